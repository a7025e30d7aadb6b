"""Blob transfers against Azurite on this machine: batchspec vs a sequential SDK loop vs azcopy.

Two sets of files, each uploaded then downloaded by the three, in rounds (the order of the three
rotates from round to round; dirty pages are flushed before each), each into its own container:

- small: 1,000 files of 64 KiB (target: batchspec >= 2.5x the loop and faster than azcopy);
- large: 20 files of 32 MiB (target: >= 1.5x the loop and faster than azcopy).

batchspec runs through the functions `apply` uses: `transfer.upload` with the blobs of a built
spec, and for downloads `live.state.download_pending` (list, compare with the local files) then
`transfer.download`, with the clients of `targets.connect("local")` at the CLI's default
parallelism (16). Uploads also go through the CLI: `batchspec apply` of a spec uploading the
same files (a pool of one node, one `/bin/true` task), timed from its "uploading" line to its
next step, destroyed between rounds (not timed). A second run transfers nothing: a fresh plan has
no blob change and `download_pending` is empty.

azcopy (`@azure-tools/azcopy-linux`, a dev-only peer) is installed on demand into `.cache/azcopy`
with npm (not in package.json); the binary needs libsecret, which is fetched with
`apt-get download` into the same cache when the system lacks it. It runs against Azurite over
plain http with a container SAS and `--from-to`. If it cannot run, the output says why.

    python benchmarks/transfers.py [--quick] [--check] [--rounds 3]
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import _common as c

AZCOPY_DIR = c.CACHE / "azcopy"
AZCOPY_BIN = AZCOPY_DIR / "node_modules/@azure-tools/azcopy-linux/dist/bin/azcopy_linux_amd64"
LIBSECRET = AZCOPY_DIR / "libsecret/usr/lib/x86_64-linux-gnu"

SPEC = """\
name: benchxfer
storage:
  containers:
    small: {upload: [small/*.bin]}
    large: {upload: [large/*.bin]}
pool:
  id: benchxfer-pool
  vmSize: standard_d2s_v3
  image: {publisher: canonical, offer: ubuntu-24_04-lts, sku: server}
  targetDedicatedNodes: 0
job:
  id: benchxfer-job
  tasks: {forEach: {range: 1}, id: "t{{ item }}", commandLine: /bin/true}
download: {container: small, to: down/small}
"""

# What `batchspec apply` uploads in the CLI way: one kind of files, a pool of one node.
CLI_SPEC = """\
name: benchcli-{kind}
storage:
  containers:
    cli-{kind}: {{upload: [{kind}/*.bin]}}
pool:
  vmSize: standard_d2s_v3
  image: {{publisher: canonical, offer: ubuntu-24_04-lts, sku: server}}
  targetDedicatedNodes: 1
job:
  tasks: {{forEach: {{range: 1}}, id: "t{{{{ item }}}}", commandLine: /bin/true}}
"""


# -- azcopy -----------------------------------------------------------------------------------


def azcopy_env(tmp: Path) -> dict:
    env = dict(os.environ)
    env["AZCOPY_LOG_LOCATION"] = str(tmp / "azcopy-logs")
    env["AZCOPY_JOB_PLAN_LOCATION"] = str(tmp / "azcopy-plans")
    if LIBSECRET.exists():
        env["LD_LIBRARY_PATH"] = f"{LIBSECRET}:{env.get('LD_LIBRARY_PATH', '')}".rstrip(":")
    return env


def ensure_azcopy(tmp: Path) -> tuple[Path | None, str]:
    """The azcopy binary, installed on demand; or None and why it cannot run here."""
    if not AZCOPY_BIN.exists():
        npm = shutil.which("npm")
        if not npm:
            return None, "npm not found to install @azure-tools/azcopy-linux"
        r = subprocess.run(
            [npm, "install", "--no-save", "--no-audit", "--no-fund", "--prefix", str(AZCOPY_DIR),
             "@azure-tools/azcopy-linux"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if r.returncode != 0 or not AZCOPY_BIN.exists():
            return None, f"npm install @azure-tools/azcopy-linux failed: {r.stderr.strip()[-300:]}"
    AZCOPY_BIN.chmod(0o755)  # npm does not keep the binary's executable bit
    probe = subprocess.run([AZCOPY_BIN, "--version"], capture_output=True, text=True, env=azcopy_env(tmp))
    if probe.returncode != 0 and "libsecret" in probe.stderr and not LIBSECRET.exists():
        # The binary links libsecret-1.so.0 (for its credential cache); fetch the Debian package
        # without installing it system-wide.
        deb_dir = AZCOPY_DIR / "deb"
        deb_dir.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["apt-get", "download", "libsecret-1-0"], cwd=deb_dir, capture_output=True, check=False
        )
        for deb in deb_dir.glob("libsecret-1-0_*.deb"):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(AZCOPY_DIR / "libsecret")], check=False)
        probe = subprocess.run([AZCOPY_BIN, "--version"], capture_output=True, text=True, env=azcopy_env(tmp))
    if probe.returncode != 0:
        return None, f"azcopy does not run here: {probe.stderr.strip()[-300:]}"
    return AZCOPY_BIN, probe.stdout.strip()


def azcopy(binary: Path, tmp: Path, src: str, dst: str, from_to: str) -> float:
    cmd = [
        str(binary),
        "copy",
        src,
        dst,
        "--from-to",
        from_to,
        "--log-level",
        "ERROR",
        "--output-level",
        "quiet",
    ]
    with c.timer() as t:
        r = subprocess.run(cmd, capture_output=True, text=True, env=azcopy_env(tmp))
    if r.returncode != 0:
        raise SystemExit(f"azcopy failed: {r.stdout[-1000:]} {r.stderr[-1000:]}")
    return t["s"]


# -- the three ways ---------------------------------------------------------------------------


def container_sas(name: str) -> str:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    from batchspec import local

    s = local.status().storage
    token = generate_container_sas(
        s["account_name"], name, account_key=s["account_key"],
        permission=ContainerSasPermissions(read=True, write=True, create=True, list=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=2),
    )  # fmt: skip
    return f"{s['blob_endpoint']}/{name}?{token}"


def sdk_client():
    """A BlobServiceClient as the tutorial makes it: from the connection string, SDK defaults."""
    from azure.storage.blob import BlobServiceClient

    from batchspec import local

    return BlobServiceClient.from_connection_string(local.status().storage["connection_string"])


def fresh_container(service, name: str, metadata: dict | None = None) -> None:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        service.delete_container(name)
    except ResourceNotFoundError:
        pass
    service.create_container(name, metadata=metadata)


def seq_upload(service, container: str, files: list[Path]) -> float:
    with c.timer() as t:
        client = service.get_container_client(container)
        for f in files:
            with open(f, "rb") as data:
                client.upload_blob(f.name, data, overwrite=True)
    return t["s"]


def seq_download(service, container: str, to: Path) -> float:
    to.mkdir(parents=True, exist_ok=True)
    with c.timer() as t:
        client = service.get_container_client(container)
        for b in client.list_blobs():
            with open(to / b.name, "wb") as f:
                f.write(client.download_blob(b.name).readall())
    return t["s"]


def bs_upload(target, desired, container: str) -> float:
    from batchspec.apply import transfer

    blobs = [b for b in desired.blobs if b.container == container]
    with c.timer() as t:
        failures = transfer.upload(target, blobs, desired.name, parallelism=16)
    if failures:
        raise SystemExit(f"batchspec upload failed: {failures[:3]}")
    return t["s"]


def bs_download(target, desired) -> float:
    """Applier._download's path: what is pending, then the parallel download."""
    from batchspec.apply import transfer
    from batchspec.live import state as live_state

    d = desired.download
    with c.timer() as t:
        pending = live_state.download_pending(target, desired)
        failures = transfer.download(
            target, d.container, list(pending), Path(d.to), parallelism=16, sizes=pending
        )
    if failures:
        raise SystemExit(f"batchspec download failed: {failures[:3]}")
    return t["s"]


def cli_upload(root: Path, kind: str) -> float:
    """`batchspec apply` of CLI_SPEC, timed from its "uploading" line to its next step; the
    spec's resources destroyed first (not timed)."""
    spec = root / f"cli-{kind}.yaml"
    spec.write_text(CLI_SPEC.format(kind=kind))
    cli = c.batchspec_cli()
    destroyed = c.run([*cli, "destroy", spec.name, "--auto-approve"], cwd=root)
    if destroyed.returncode != 0:
        raise SystemExit(f"destroy failed:\n{destroyed.stdout}{destroyed.stderr}")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    steps: list[tuple[float, str]] = []
    proc = subprocess.Popen(
        [*cli, "apply", spec.name, "--auto-approve"], cwd=root, env=env, stdout=subprocess.PIPE, text=True
    )
    for line in proc.stdout:
        if line.startswith("==>"):
            steps.append((time.perf_counter(), line))
    if proc.wait() != 0:
        raise SystemExit(f"batchspec apply failed: {''.join(text for _, text in steps)}")
    for (at, text), (after, _) in zip(steps, steps[1:], strict=False):
        if text.startswith("==> uploading"):
            return after - at
    raise SystemExit(f"batchspec apply printed no upload step: {''.join(text for _, text in steps)}")


def same_files(a: Path, b: Path) -> bool:
    names = sorted(p.name for p in a.iterdir())
    return names == sorted(p.name for p in b.iterdir()) and all(
        (a / n).read_bytes() == (b / n).read_bytes() for n in names
    )


# -- the benchmark ----------------------------------------------------------------------------


def make_files(folder: Path, count: int, size: int) -> list[Path]:
    folder.mkdir(parents=True)
    files = []
    for i in range(count):
        path = folder / f"f{i:05d}.bin"
        path.write_bytes(os.urandom(size))
        files.append(path)
    return files


def settle() -> None:
    """Flush dirty pages before a timed run, so that no way pays for the writeback of the
    previous way's files (Azurite keeps blobs on disk; rounds write gigabytes)."""
    os.sync()


def measure(kind: str, files: list[Path], rounds: int, root: Path, azcopy_bin: Path | None) -> dict:
    """Seconds per round for each way and direction, plus the second-run checks.

    Each round runs the ways in a rotated order (a way that always ran last would always run
    against the most loaded Azurite), each into a container of its own.
    """
    from batchspec.live import state as live_state
    from batchspec.model import STORAGE_OWNER
    from batchspec.plan import diff
    from batchspec.spec.build import build

    desired = build(str(root / "spec.yaml"), {})
    d = desired.download
    desired = dataclasses.replace(
        desired, download=dataclasses.replace(d, container=kind, to=str(root / "down" / kind))
    )
    target, _ = c.connect(parallelism=16)
    sdk = sdk_client()
    times: dict[str, list[float]] = {
        k: [] for k in ("seq_up", "az_up", "bs_up", "cli_up", "seq_down", "az_down", "bs_down")
    }

    def up(way: str) -> float:
        if way == "cli":
            return cli_upload(root, kind)
        if way == "seq":
            fresh_container(sdk, f"seq-{kind}")
            return seq_upload(sdk, f"seq-{kind}", files)
        if way == "az":
            fresh_container(sdk, f"az-{kind}")
            return azcopy(azcopy_bin, root, str(root / kind / "*"), container_sas(f"az-{kind}"), "LocalBlob")
        fresh_container(sdk, kind, {STORAGE_OWNER: desired.name})
        return bs_upload(target, desired, kind)

    def down(way: str, folder: Path) -> float:
        if way == "seq":
            return seq_download(sdk, f"seq-{kind}", folder / "seq")
        if way == "az":
            (folder / "az").mkdir(parents=True)
            base, _, query = container_sas(f"az-{kind}").partition("?")
            return azcopy(azcopy_bin, root, f"{base}/*?{query}", str(folder / "az"), "BlobLocal")
        shutil.rmtree(desired.download.to, ignore_errors=True)
        return bs_download(target, desired)

    ways = ["seq", "az", "bs"] if azcopy_bin else ["seq", "bs"]
    for r in range(rounds):
        order = ways[r % len(ways) :] + ways[: r % len(ways)]
        folder = root / f"down-{kind}-{r}"
        uploads = [*order, "cli"] if r % 2 else ["cli", *order]
        for way in uploads:
            settle()
            times[f"{way}_up"].append(up(way))
        # downloads, each from the container it uploaded, into an empty folder
        for way in order:
            settle()
            times[f"{way}_down"].append(down(way, folder))
        for way in ways:
            got = Path(desired.download.to) if way == "bs" else folder / way
            if not same_files(root / kind, got):
                raise SystemExit(f"{way} download of {kind} differs from the files")
        shutil.rmtree(folder, ignore_errors=True)
    # A second run: nothing to upload, nothing to download.
    with c.timer() as t_plan:
        plan = diff(desired, live_state.read(target, desired))
    with c.timer() as t_pending:
        pending = live_state.download_pending(target, desired)
    target.close()
    return {
        "times": times,
        "second_uploads": sum(1 for ch in plan.of("blob") if ch.id.startswith(f"{kind}/")),
        "second_downloads": len(pending),
        "second_s": t_plan["s"] + t_pending["s"],
    }


def rows_for(kind: str, n: int, size: int, m: dict, factor: float, azcopy_note: str) -> list[c.Row]:
    mib = n * size / 2**20
    unit, amount = ("files/s", n) if kind == "small" else ("MiB/s", mib)
    t = m["times"]

    def seconds(key: str) -> str:
        return ", ".join(f"{x:.2f}" for x in t[key])

    def row(label: str, way: str, direction: str) -> c.Row:
        rate = {
            w: amount / c.median(t[f"{w}_{direction}"]) if t[f"{w}_{direction}"] else None
            for w in (way, "seq", "az")
        }
        ratio = rate[way] / rate["seq"]
        peer = f"; azcopy {seconds(f'az_{direction}')}" if t[f"az_{direction}"] else f"; {azcopy_note}"
        return c.Row(
            f"{label} {n} x {size // 1024} KiB" + (", CLI" if way == "cli" else ""),
            unit,
            round(rate[way], 1),
            baseline=round(rate["seq"], 1),
            peer=None if rate["az"] is None else round(rate["az"], 1),
            ratio=ratio,
            target=f">= {factor}x loop, > azcopy",
            met=ratio >= factor and (rate["az"] is None or rate[way] > rate["az"]),
            runs=t[f"{way}_{direction}"],
            note=("`batchspec apply`, from its uploading line to its next step; " if way == "cli" else "")
            + f"seconds per round: batchspec {seconds(f'{way}_{direction}')}; loop "
            + seconds(f"seq_{direction}")
            + peer,
        )

    rows = [row("upload", "bs", "up")]
    if t["cli_up"]:
        rows.append(row("upload", "cli", "up"))
    rows.append(row("download", "bs", "down"))
    moved = m["second_uploads"] + m["second_downloads"]
    rows.append(
        c.Row(
            f"second run, {kind}: blobs transferred",
            "",
            moved,
            target="0",
            met=moved == 0,
            note=f"plan + download check took {m['second_s']:.2f} s",
        )
    )
    return rows


def main() -> int:
    p = c.parser(__doc__)
    p.add_argument("--rounds", type=int, help="rounds of each measurement (default 3, --quick 1)")
    args = p.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    small_n, small_size = (100, 64 * 1024) if args.quick else (1000, 64 * 1024)
    large_n, large_size = (3, 8 * 2**20) if args.quick else (20, 32 * 2**20)
    root = Path(tempfile.mkdtemp(prefix="batchspec-bench-xfer-"))
    rows = []
    try:
        (root / "spec.yaml").write_text(SPEC)
        small = make_files(root / "small", small_n, small_size)
        large = make_files(root / "large", large_n, large_size)
        azcopy_bin, azcopy_info = ensure_azcopy(root)
        print(f"azcopy: {azcopy_info}" if azcopy_bin else f"azcopy SKIPPED: {azcopy_info}")
        with c.LocalServices():
            m_small = measure("small", small, rounds, root, azcopy_bin)
            m_large = measure("large", large, rounds, root, azcopy_bin)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    note = "" if azcopy_bin else f"azcopy not run: {azcopy_info}"
    rows += rows_for("small", small_n, small_size, m_small, 2.5, note)
    rows += rows_for("large", large_n, large_size, m_large, 1.5, note)
    return c.report(
        "transfers",
        rows,
        quick=args.quick,
        check=args.check,
        params={"rounds": rounds, "small": [small_n, small_size], "large": [large_n, large_size],
                "azcopy": azcopy_info, "small_s": m_small, "large_s": m_large},
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
