"""A home network and slow devices on one Linux machine, for Dora's tests and benchmarks (root).

Each device lives in its own network namespace, joined to the host by a veth
pair whose host end is a port of one bridge: the access point.  The host
(coordinator and pipeline driver) is on the bridge too, and every activation
crosses it (the driver relays them), so transfers contend for it.  Like a
Wi-Fi access point it is one medium for both directions: the bridge's egress
and ingress are both redirected into one ``ifb`` device shaped by a ``tbf``
at the access point's rate.  Each device's own radio is a ``tbf`` on its end
of the veth.

``netem`` does not work on these machines, so propagation delay and loss are
emulated in the transport layer instead: ``Lan(delay_ms=..., loss=...)``
hands them to every daemon it spawns (``EDGEWEAVE_EMULATED_LINK``), whose
HTTP server then holds each request ``delay_ms`` before handling it and each
answer ``delay_ms`` before sending it (:mod:`edgeweave.serving.emulated_link`), and drops
each 1448-byte segment of either with probability ``loss``, every lost
segment costing one retransmission timeout (``RTO_S``, Linux's minimum: the
case where fast retransmit does not save it).  Compute: each device's daemon
runs in a CPU cgroup with a quota (cgroup v1 ``cpu.cfs_quota_us`` or v2
``cpu.max``), a fraction of one core; where cgroups are not writable the
quota is not applied and :attr:`Lan.notices` says so.  :func:`unavailable`
says why namespaces cannot be used here (not root, no ``ip``), so a caller
can fall back to loopback with that notice.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

from edgeweave.cluster.cluster_files import LocalDevice, device_toml, write
from edgeweave.cluster.processes import ServiceProcess, spawn
from edgeweave.serving.emulated_link import LINK_ENV

CGROUP_V1 = Path("/sys/fs/cgroup/cpu")
CGROUP_V2 = Path("/sys/fs/cgroup")
PERIOD_US = 4_000  # short, so a burst of a few ms is throttled too, as on a slower CPU
MIN_QUOTA_US = 1_000  # the kernel's floor: shares below a quarter of a core are not possible


def unavailable() -> str | None:
    """Why network namespaces cannot be used here, or None if they can."""
    if os.geteuid() != 0:
        return "network emulation needs root (namespaces, bridges, tc)"
    missing = [t for t in ("ip", "tc") if shutil.which(t) is None]
    if missing:
        return f"network emulation needs {' and '.join(missing)} (iproute2)"
    probe = f"ewp{uuid.uuid4().hex[:6]}"
    if subprocess.run(["ip", "netns", "add", probe], capture_output=True).returncode != 0:
        return "this kernel or container does not allow network namespaces"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _sh(*args: str) -> None:
    done = subprocess.run(list(args), capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}")


def _tbf(dev: str, mbit: float, ns: str | None = None) -> None:
    burst = max(int(mbit * 1e6 / 8 / 100), 16_000)  # 10 ms worth, at least 16 kB
    pre = ("ip", "netns", "exec", ns) if ns else ()
    shape = ("tbf", "rate", f"{mbit}mbit", "burst", str(burst), "latency", "100ms")
    _sh(*pre, "tc", "qdisc", "add", "dev", dev, "root", *shape)


@dataclass
class Host:
    name: str
    namespace: str
    address: str
    cpu_share: float | None = None


@dataclass
class Lan:
    """``with Lan(ap_mbit=50) as lan: host = lan.add("pi-1", link_mbit=40, cpu_share=0.25)``."""

    ap_mbit: float
    delay_ms: float = 0.0  # one way, each leg
    loss: float = 0.0  # per 1448-byte segment
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:5])
    hosts: list[Host] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    _cgroups: list[Path] = field(default_factory=list)
    subnet: int = field(default_factory=lambda: 100 + uuid.uuid4().int % 100)

    @property
    def bridge(self) -> str:
        return f"ewbr{self.tag}"

    @property
    def gateway(self) -> str:
        return f"10.{self.subnet}.0.1"

    def __enter__(self) -> Lan:
        try:
            self._build()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _build(self) -> None:
        br, ifb = self.bridge, f"ewif{self.tag}"
        _sh("ip", "link", "add", br, "type", "bridge")
        _sh("ip", "addr", "add", f"{self.gateway}/24", "dev", br)
        _sh("ip", "link", "set", br, "up")
        _sh("ip", "link", "add", ifb, "type", "ifb")
        _sh("ip", "link", "set", ifb, "up")
        _tbf(ifb, self.ap_mbit)  # the air: one medium for both directions
        redirect = ("protocol", "all", "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect")
        _sh("tc", "qdisc", "add", "dev", br, "root", "handle", "1:", "htb")  # classful, to hang the filter on
        _sh("tc", "filter", "add", "dev", br, "parent", "1:", *redirect, "dev", ifb)
        _sh("tc", "qdisc", "add", "dev", br, "handle", "ffff:", "ingress")
        _sh("tc", "filter", "add", "dev", br, "parent", "ffff:", *redirect, "dev", ifb)

    def add(self, name: str, link_mbit: float, cpu_share: float | None = None) -> Host:
        n = len(self.hosts)
        ns, host_end, dev_end = f"ew{self.tag}-{n}", f"ewh{self.tag}{n}", f"ewd{self.tag}{n}"
        address = f"10.{self.subnet}.0.{n + 2}"
        _sh("ip", "netns", "add", ns)
        _sh("ip", "link", "add", host_end, "type", "veth", "peer", "name", dev_end)
        _sh("ip", "link", "set", dev_end, "netns", ns)
        _sh("ip", "link", "set", host_end, "master", self.bridge)
        _sh("ip", "link", "set", host_end, "up")
        for cmd in (("ip", "link", "set", "lo", "up"), ("ip", "addr", "add", f"{address}/24", "dev", dev_end),
                    ("ip", "link", "set", dev_end, "up")):  # fmt: skip
            _sh("ip", "netns", "exec", ns, *cmd)
        _tbf(dev_end, link_mbit, ns)
        host = Host(name, ns, address, cpu_share)
        self.hosts.append(host)
        return host

    def spawn_device(self, host: Host, profile: LocalDevice, secret: str, workdir: Path) -> ServiceProcess:
        """A device daemon for ``profile`` inside the host's namespace, bound to its address and not
        advertised (it is found by its URL); config and log go to ``workdir``."""
        cfg = write(workdir / f"{profile.id}.toml", device_toml(replace(profile, host=host.address), secret, False))
        return self.spawn(host, ["device", "serve", "--config", str(cfg)], workdir / f"{profile.id}.log")

    def spawn(self, host: Host, args: list[str], log: Path) -> ServiceProcess:
        """``edgeweave ARGS`` inside the host's namespace, under its CPU quota."""
        env = {LINK_ENV: f"{self.delay_ms},{self.loss}"} if self.delay_ms or self.loss else None
        svc = spawn(host.name, args, log, env=env, prefix=("ip", "netns", "exec", host.namespace))
        if host.cpu_share is not None:
            self._limit(host, svc.proc.pid)
        return svc

    def _limit(self, host: Host, pid: int) -> None:
        quota = max(int(host.cpu_share * PERIOD_US), MIN_QUOTA_US)  # type: ignore[operator]
        name = f"edgeweave-{self.tag}-{host.name}"
        try:
            if (CGROUP_V1 / "cpu.cfs_quota_us").exists():
                group = CGROUP_V1 / name
                group.mkdir(exist_ok=True)
                (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                (group / "cpu.cfs_quota_us").write_text(str(quota))
                (group / "tasks").write_text(str(pid))
            elif (CGROUP_V2 / "cgroup.controllers").exists():
                group = CGROUP_V2 / name
                group.mkdir(exist_ok=True)
                (group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
                (group / "cgroup.procs").write_text(str(pid))
            else:
                raise OSError("no cgroup v1 cpu controller or cgroup v2 hierarchy is mounted")
            self._cgroups.append(group)
        except OSError as e:
            self.notices.append(f"{host.name}: no CPU quota ({e}); it runs at this machine's full speed")

    def __exit__(self, *exc: object) -> None:
        for host in self.hosts:  # the services spawned in them are the caller's to stop first
            subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True)
        for dev in (self.bridge, f"ewif{self.tag}"):
            subprocess.run(["ip", "link", "del", dev], capture_output=True)
        for group in self._cgroups:
            for _ in range(50):  # a task that just exited may still be leaving the group
                try:
                    group.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)
