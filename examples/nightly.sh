#!/bin/sh
# Nightly mirror of a URL list, for cron. A crontab line:
#
#   17 3 * * *  /path/to/nightly.sh /srv/mirror/urls.txt /srv/mirror/files
#
# Cron's PATH has no ~/.cargo/bin: set FETCHQ to the binary's absolute path
# if it is not on /usr/bin:/bin. Give the list and folder as absolute paths.
# fetchq -q prints nothing when every entry is fine, so cron mails only on
# trouble; -N re-downloads only what changed on the server (304 otherwise).
# Every event goes to a log with a timestamp; the exit code says what happened.
set -u
list=${1:?usage: nightly.sh LIST DIR}
dir=${2:?usage: nightly.sh LIST DIR}
log="$dir/.fetchq.log"

fetchq=${FETCHQ:-$HOME/.cargo/bin/fetchq}

"$fetchq" -q -N --retries 5 --log "$log" -d "$dir" "$list"
status=$?
case $status in
  0)   ;;                                                   # all downloaded or unchanged
  1)   echo "fetchq: some downloads failed; see $log" >&2 ;; # the others are done
  2)   echo "fetchq: could not run (bad list or output dir)" >&2 ;;
  129|130|143) echo "fetchq: interrupted; rerun with -c to continue" >&2 ;;
  *)   echo "fetchq: unexpected exit status $status" >&2 ;;
esac
exit $status
