"""The seccomp filter every process in a sandbox runs under.

It refuses, with EPERM, what container runtimes refuse by default (Docker's default
profile is the reference): the kernel keyring, loading modules, kexec, bpf,
perf_event_open, userfaultfd, mounting and new namespaces, reading or writing other
processes' memory, clocks, swap, reboot. Sandbox processes already hold no
capabilities, so the kernel would refuse most of these anyway; the filter also closes
the door on kernel bugs reachable through them.

``setns`` and ``chroot`` stay allowed: the engine's own way into a sandbox (nsenter,
under this same filter) needs them, and without capabilities the kernel refuses both
to the sandbox's processes. ``ptrace`` stays allowed, as in Docker on current kernels:
a sandbox's processes can debug each other, and no process of another sandbox or of
the host is visible or shares their uid.

The filter is compiled once by libseccomp. bubblewrap loads it for a sandbox's first
process (``--seccomp``); every later process inherits it from the engine's thread
that starts them (``spawn.py``).
"""

from __future__ import annotations

import ctypes
import errno
import os
import tempfile
from functools import cache

import pyseccomp as seccomp

DENIED = (
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module",
    "delete_module", "finit_module", "fsconfig", "fsmount", "fsopen", "fspick",
    "get_kernel_syms", "get_mempolicy", "init_module", "ioperm", "iopl", "kcmp",
    "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie", "mbind", "mount",
    "mount_setattr", "move_mount", "move_pages", "name_to_handle_at", "nfsservctl",
    "open_by_handle_at", "open_tree", "perf_event_open", "pivot_root",
    "process_vm_readv", "process_vm_writev", "query_module", "quotactl", "quotactl_fd",
    "reboot", "request_key", "set_mempolicy", "settimeofday", "stime", "swapoff",
    "swapon", "syslog", "sysfs", "_sysctl", "umount", "umount2", "unshare", "uselib",
    "userfaultfd", "ustat", "vm86", "vm86old",
)  # fmt: skip
NAMESPACE_FLAGS = (
    0x00020000  # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
)
PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


def _build() -> seccomp.SyscallFilter:
    rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in DENIED:
        try:
            rules.add_rule(seccomp.ERRNO(errno.EPERM), name)
        except (RuntimeError, ValueError, OSError):
            continue  # a syscall this architecture does not have
    # clone() with a namespace flag; clone3 hides its flags in memory a filter cannot
    # read, so it answers "not implemented" and the C library falls back to clone().
    for flag in (f for f in range(17, 31) if (1 << f) & NAMESPACE_FLAGS):
        rules.add_rule(
            seccomp.ERRNO(errno.EPERM),
            "clone",
            seccomp.Arg(0, seccomp.MASKED_EQ, 1 << flag, 1 << flag),
        )
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    return rules


@cache
def program() -> bytes:
    """The compiled BPF program (an array of ``struct sock_filter``)."""
    with tempfile.TemporaryFile() as out:
        _build().export_bpf(out)
        out.seek(0)
        return out.read()


def program_fd() -> int:
    """A fresh descriptor holding :func:`program`, for bubblewrap's ``--seccomp``."""
    fd = os.memfd_create("sandbar-seccomp", os.MFD_CLOEXEC)
    os.write(fd, program())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


_libc = ctypes.CDLL(None, use_errno=True)


def load_on_this_thread() -> None:
    """Set no_new_privs and load the filter on the calling thread only.

    What that thread starts from then on inherits both (see ``spawn.py``).
    """
    code = program()
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = _SockFprog(len(code) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")
