#!/bin/sh
# The server's wrapper under supervisord (a host without systemd): supervisord starts it as
# root; it reads the root-only environment file, copies the API key's config where the service
# user alone can read it, notes the start, then becomes the service user (no new privileges) and
# runs the server in its place, so supervisord's TERM reaches SGLang and its drain.
#
#   sglang-supervised USER ENV_FILE CREDENTIALS_DIR -- ARGV...
#
# Nothing secret is in its arguments, in supervisord's config or in its logs.
set -eu
user=$1 env_file=$2 credentials=$3
shift 3
group=$(id -gn "$user")
[ "$1" = "--" ] && shift
name=${SUPERVISOR_PROCESS_NAME:-sglang}  # supervisord sets it to the program's name
log_dir=${SGLANG_LOG_DIR:-/var/log/sglang}
umask 027
set -a
# shellcheck disable=SC1090  # the deploy's environment file: KEY="value" lines
. "$env_file"
set +a
if [ -f /etc/sglang/api-key.json ]; then
    install -d -m 0700 -o "$user" -g "$group" "$credentials"
    install -m 0400 -o "$user" -g "$group" /etc/sglang/api-key.json \
        "$credentials/sglang-config.yaml"
else
    rm -f "$credentials/sglang-config.yaml"  # the key was dropped: so is its copy
fi
echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) start" >> "$log_dir/$name.starts"
# HOME: the one directory the service user may write (the unit's ReadWritePaths), where the
# JIT compilers (Triton, FlashInfer) keep their caches.
export HOME="${HF_HOME:-$(getent passwd "$user" | cut -d: -f6)}" USER="$user" LOGNAME="$user"
exec setpriv --reuid="$user" --regid="$group" --init-groups --no-new-privs -- "$@"
