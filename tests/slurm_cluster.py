"""A real one-node SLURM cluster for tests: munged, slurmctld and slurmd, started and stopped here.

Needs root and Debian's slurmctld, slurmd, slurm-client and munge packages (README's test
command installs them). ``slurm.conf`` must sit at /etc/slurm/slurm.conf: the job-step
plugin drops ``SLURM_CONF`` from every job's environment. Any file already there is put
back afterwards. Every daemon is stopped by the pid it wrote.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The daemons live in /usr/sbin, which a non-login PATH may lack.
for _folder in ("/usr/sbin", "/sbin"):
    if _folder not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.environ.get("PATH", "") + os.pathsep + _folder

BINARIES = ("munged", "mungekey", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel")
CONF_DIR = Path("/etc/slurm")
CONF_FILES = ("slurm.conf", "gres.conf")


def unavailable_reason() -> str | None:
    """Why this machine cannot run the cluster, or None when it can."""
    if os.geteuid() != 0:
        return "the SLURM test cluster needs root (it writes /etc/slurm/slurm.conf and runs the daemons)"
    missing = [name for name in BINARIES if shutil.which(name) is None]
    if missing:
        return (
            f"SLURM/munge binaries missing ({', '.join(missing)}): "
            "apt-get install --no-install-recommends slurmctld slurmd slurm-client munge"
        )
    return None


def _node_line(hostname: str) -> str:
    layout = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[
        0
    ]
    fields = dict(part.split("=", 1) for part in layout.split() if "=" in part)
    with open("/proc/meminfo") as meminfo:
        total_kb = int(next(line for line in meminfo if line.startswith("MemTotal")).split()[1])
    keep = ("CPUs", "Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore")
    layout_fields = " ".join(f"{key}={fields[key]}" for key in keep if key in fields)
    return (
        f"NodeName={hostname} NodeAddr=127.0.0.1 {layout_fields} "
        f"RealMemory={int(total_kb / 1024 * 0.9)} Gres=gpu:1 State=UNKNOWN"
    )


def _slurm_conf(work: Path, hostname: str) -> str:
    return "\n".join(
        [
            "ClusterName=mioracle",
            f"SlurmctldHost={hostname}(127.0.0.1)",
            "SlurmUser=root",
            "AuthType=auth/munge",
            f"AuthInfo=socket={work}/munge.socket",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core_Memory",
            "AccountingStorageType=accounting_storage/none",
            "JobAcctGatherType=jobacct_gather/none",
            "MinJobAge=600",
            "SchedulerParameters=sched_interval=2",
            "ReturnToService=2",
            "GresTypes=gpu",
            f"StateSaveLocation={work}/state",
            f"SlurmdSpoolDir={work}/spool",
            f"SlurmctldPidFile={work}/slurmctld.pid",
            f"SlurmdPidFile={work}/slurmd.pid",
            f"SlurmctldLogFile={work}/slurmctld.log",
            f"SlurmdLogFile={work}/slurmd.log",
            _node_line(hostname),
            "PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
    )


def _stop(pid_file: Path) -> None:
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def _wait_for_idle_node(hostname: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        result = subprocess.run(["sinfo", "-h", "-n", hostname, "-o", "%t"], capture_output=True, text=True)
        state = result.stdout.strip()
        if state == "idle":
            return
        time.sleep(0.5)
    raise RuntimeError(f"SLURM node {hostname} did not become idle (last state {state!r})")


@contextmanager
def slurm_cluster() -> Iterator[Path]:
    """Bring up munged, slurmctld and slurmd; yield the folder holding their logs; stop them all."""
    hostname = socket.gethostname().split(".")[0]
    work = Path(tempfile.mkdtemp(prefix="mi-oracle-slurm-"))
    for folder in ("state", "spool"):
        (work / folder).mkdir()
    backup = work / "etc-backup"
    backup.mkdir()
    CONF_DIR.mkdir(parents=True, exist_ok=True)
    for name in CONF_FILES:
        if (CONF_DIR / name).exists():
            shutil.copy2(CONF_DIR / name, backup / name)
    try:
        subprocess.run(["mungekey", "--create", "--keyfile", str(work / "munge.key"), "--force"], check=True)
        subprocess.run(
            [
                "munged",
                "--force",
                f"--key-file={work / 'munge.key'}",
                f"--socket={work / 'munge.socket'}",
                f"--pid-file={work / 'munged.pid'}",
                f"--log-file={work / 'munged.log'}",
                f"--seed-file={work / 'munged.seed'}",
            ],
            check=True,
        )
        (CONF_DIR / "slurm.conf").write_text(_slurm_conf(work, hostname))
        (CONF_DIR / "gres.conf").write_text("Name=gpu File=/dev/null\n")
        subprocess.run(["slurmctld", "-c"], check=True)
        subprocess.run(["slurmd"], check=True)
        _wait_for_idle_node(hostname)
        yield work
    finally:
        for pid_file in ("slurmd.pid", "slurmctld.pid", "munged.pid"):
            _stop(work / pid_file)
        for name in CONF_FILES:
            (CONF_DIR / name).unlink(missing_ok=True)
            if (backup / name).exists():
                shutil.copy2(backup / name, CONF_DIR / name)
