# kmodlab guest agent: runs framed commands read from stdin, writes framed results to stdout.
#
# Started as `cat /etc/kmodlab/agent.sh - | sh -s` on the virtio command port (serial transport)
# and on an SSH channel (ssh transport), so both transports speak one protocol: the shell reads
# these definitions, then keeps reading its input as the host's requests.  The host sends lines
# of shell text that call the functions below with single-quoted arguments; every reply is
# framed by a random per-request nonce, so a command's output can contain anything (prompts,
# binary, no final newline) and still be cut out exactly:
#   \002NONCE\n  stdout...  \003NONCE RC\n  stderr...  \004NONCE\n
# `__km_run NONCE ISOLATE COMMAND`: with ISOLATE=1 the command runs in its own subshell, so
# `exit`, `cd` or a syntax error in it cannot harm the agent; stdin is always /dev/null.

__km_run() {
	printf '\002%s\n' "$1"
	if [ "$2" = 1 ]; then
		( eval "$3" ) </dev/null 2>/tmp/.km_err.$$
	else
		# No subshell, for the harness's own fixed commands (reading /proc files): a fork
		# costs ~3 ms under TCG on arm64.  Never used for user text, which could `exit`.
		eval "$3" </dev/null 2>/tmp/.km_err.$$
	fi
	__km_rc=$?
	printf '\003%s %d\n' "$1" "$__km_rc"
	[ -s /tmp/.km_err.$$ ] && cat /tmp/.km_err.$$
	printf '\004%s\n' "$1"
}

# Receive exactly $3 raw bytes into $2, then report their md5.  The host sends the bytes only
# after seeing the READY frame, so nothing the shell has already buffered belongs to them.  The
# bytes always land in /tmp first: even when $2 cannot be written, all $3 bytes are consumed and
# none of them is ever read as a command.
__km_push() {
	printf '\005%s READY\n' "$1"
	head -c "$3" >/tmp/.km_push.$$
	printf '\002%s\n' "$1"
	{ mv -f /tmp/.km_push.$$ "$2" && md5sum "$2"; } 2>&1
	__km_rc=$?
	rm -f /tmp/.km_push.$$
	printf '\003%s %d\n\004%s\n' "$1" "$__km_rc" "$1"
}

# The stderr file goes with the agent: when its input ends (the host closed the channel) or
# it is told to stop.  The unit tests run this script on the host, where it used to stay.
trap 'rm -f /tmp/.km_err.$$ /tmp/.km_push.$$' EXIT
trap 'exit 143' TERM HUP
printf '\001KMODLAB-AGENT-READY %s\n' "$$"
