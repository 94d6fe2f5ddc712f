"""The lab's NVIDIA driver: what a real host's kernel, packages and firmware do, simulated at the
interfaces the toolkit reads. Lab only: a real deploy never installs any of this.

A container cannot load kernel modules, so:

- ``repo.py`` builds an apt repository served from the control side, in the layout of NVIDIA's
  CUDA repository (flat, signed ``InRelease``), with stand-in packages under the real names and
  dependencies: ``cuda-keyring``, ``nvidia-driver-pinning-<branch>``, ``nvidia-open`` and
  ``cuda-drivers`` and what they depend on, for a few branches, and the kernel headers DKMS needs.
  Installing a kernel-module package stages that module on disk (its postinst, as DKMS builds
  it, and only when the headers are there); nothing is loaded until the host boots.
- ``kernel_boot.py`` runs at each boot of a lab host, as the kernel would: nouveau binds the GPU
  unless the initramfs blacklists it, then the staged nvidia module loads. It shows the result
  where the toolkit reads it on real hosts: ``/proc/driver/nvidia/version`` (the open or the
  proprietary module's wording) and ``/sys/module/{nvidia,nouveau}``.
- ``update_initramfs.py`` stands in for initramfs-tools' ``update-initramfs``: the "initramfs"
  is a copy of the modprobe configuration the kernel reads at the next boot.
- ``../gpus/nvidia_smi.py`` (shipped by the stand-in ``nvidia-smi`` package) answers from the
  loaded module: no module, a userspace newer than the module (before the reboot), or the
  proprietary module on a Blackwell GPU each fail as the real nvidia-smi does.
- A reboot is the host's own ``systemctl reboot``: the lab boots it again (``lab/lab.py``
  ``boot-loop``), unless told the host never comes back (``lab/lab stuck-on-reboot``).

How real hosts differ: DKMS compiles the module and the initramfs is a real image; a firmware
setting (Resizable BAR) is not simulated; the packages' file lists are a few files, not a driver.
"""
