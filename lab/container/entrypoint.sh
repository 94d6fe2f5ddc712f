#!/bin/bash
# A lab container host's entrypoint, PID 1 (no systemd), as a rented GPU container's image
# runs it: the GPU driver is the host machine's (the lab's simulated kernel shows it), the
# network is up, sshd runs; then, as /etc/lab-container.env says (lab/profiles.py):
#   INIT=supervisord  the image starts supervisord in the foreground (a Vast.ai image), or
#   INIT=sshd         the start script only starts sshd and sleeps (a RunPod image).
# A container restart runs this again, and nothing else.
set -u
. /etc/lab-container.env
/usr/bin/python3 /usr/lib/lab-driver/kernel-boot
ip link set lo up
ip addr replace "$ADDRESS/24" dev host0
ip link set host0 up
mkdir -p /run/sshd
/usr/sbin/sshd -p "$SSH_PORT" ${SSHD_CONFIG:+-f "$SSHD_CONFIG"}
if [ "$INIT" = supervisord ]; then
    exec /usr/bin/supervisord -n -c /etc/supervisor/supervisord.conf
fi
trap 'exit 0' TERM
while :; do sleep 3600 & wait $!; done
