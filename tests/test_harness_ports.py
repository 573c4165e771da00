"""The suite's own port picker: two ports asked for one config must never be the same one."""
from tests.harness import free_port


def test_free_port_never_hands_out_the_same_port_twice():
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == len(ports)
