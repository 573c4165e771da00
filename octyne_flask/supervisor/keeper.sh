# The keeper's helper (keeper.py starts it as "/bin/sh keeper.sh <grace in milliseconds>").
#
# It lives as long as the daemon, so it is a POSIX shell script rather than Python: about
# 1.5 MiB of memory instead of an interpreter's 9.
#
# It reads "+<pgid>" / "-<pgid>" lines on stdin. At end of file (the daemon closed it, or every
# daemon process died, however it died) it sends SIGTERM to every group still registered, SIGKILL
# after the grace period, and exits only once none of them runs any more (or 5 s after the kill).
# Whatever file descriptors it inherited (the apps lock) stay held until then.

PATH=/usr/bin:/bin  # grep and sleep from the system, whatever the daemon's environment says
grace_ms=$1
poll=0.05 poll_ms=50 kill_wait_ms=5000
groups=' '  # the registered group ids, each with a space on either side

while IFS= read -r line; do
    group=${line#?}
    case $group in '' | *[!0-9]* | 0* | 1) continue ;; esac  # "kill -TERM -1" would reach every process
    case $line in
    +*) case $groups in *" $group "*) ;; *) groups="$groups$group " ;; esac ;;
    -*) case $groups in *" $group "*) groups="${groups%% "$group" *} ${groups#* "$group" }" ;; esac ;;
    esac
done

alternatives=
for group in $groups; do alternatives="$alternatives${alternatives:+|}$group"; done
[ -n "$alternatives" ] || exit 0

# Does a registered group still run a process? In /proc/<pid>/stat the last ") " ends the command
# name; state, parent and group follow. Zombies (Z, X) run nothing. grep reads the files in one
# go (-s: a process that exits meanwhile is no error; -q: the first match answers; -z: each file is
# one record, as a name may hold a newline and a line of its own would pass for the last ") ").
running() {
    grep -zqsE "\) [^ZX] [0-9]+ ($alternatives) [^)]*\$" /proc/[0-9]*/stat
}

# Wait up to $1 ms (counted in polls, so never less) for no registered group to run; false if one still does.
wait_gone() {
    waited=0
    while running; do
        [ "$waited" -lt "$1" ] || return 1
        sleep $poll
        waited=$((waited + poll_ms))
    done
}

signal_groups() {
    for group in $groups; do kill -"$1" -"$group" 2>/dev/null; done
}

signal_groups TERM
wait_gone "$grace_ms" || { signal_groups KILL; wait_gone "$kill_wait_ms"; }
exit 0
