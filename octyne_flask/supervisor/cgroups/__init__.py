"""Cgroups for apps: one small interface (create, place, limit, usage, kill all, remove), a v2 and a v1
implementation chosen once at start; the supervisor never sees which."""

from .base import AppCgroup, CgroupError, CgroupTree, NoCgroups, Usage
from .detect import cgroup_tree
from .v1 import V1Tree
from .v2 import V2Tree

__all__ = ["AppCgroup", "CgroupError", "CgroupTree", "NoCgroups", "Usage", "V1Tree", "V2Tree", "cgroup_tree"]
