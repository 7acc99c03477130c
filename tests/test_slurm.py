"""`snakemake --profile slurm` on a real single-node SLURM cluster (slurm/cluster.sh), which lives in a
temporary folder of the tests' own: its slurm.conf, munge key and daemons' files; nothing of the machine's
(/etc/slurm, /etc/munge, /etc/hosts) is written. The second set (`pytest -m slow`): the README's command on
the tiny config, then the faults on copies of that run. The default config through SLURM, at its full
scale, is `pytest -m scale` (workflow/docs/slurm.md: after a change to the profile or the resources)."""

from __future__ import annotations

import hashlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from snakemake.utils import update_config

from conftest import EXP, ROOT, RUN, SNAKEMAKE, assert_answer_as_in_readme, copy_repository, planned_jobs, readme_block

pytestmark = pytest.mark.slurm

CLUSTER = ROOT / "slurm/cluster.sh"
# what a test cluster must leave as it found it (the machine's own SLURM and munge, if it has them)
MACHINE_FILES = [Path("/etc/slurm"), Path("/etc/munge"), Path("/etc/hosts")]


def cannot_run_slurm() -> str | None:
    if os.geteuid() != 0:
        return "starting slurmctld/slurmd/munged needs root"
    if not shutil.which("apt-get") or not shutil.which("dpkg-query"):
        return "no apt-get to install Debian's slurm-wlm and munge"
    return None


def fingerprint(paths: list[Path]) -> dict[str, str]:
    """Each file under ``paths`` -> a hash of its bytes (what a test must not change)."""
    found = {}
    for path in paths:
        for file in sorted([path] if path.is_file() else path.rglob("*")):
            if file.is_file():
                found[str(file)] = hashlib.sha256(file.read_bytes()).hexdigest()
    return found


def cluster_command(state: Path, command: str) -> None:
    env = {**os.environ, "HEADSTART_SLURM_STATE": str(state)}
    subprocess.run(["bash", str(CLUSTER), command], env=env, check=True, timeout=600)


@pytest.fixture(scope="module")
def cluster():
    """A test cluster in a temporary folder of its own (munge's socket needs every folder above it searchable by
    all, which pytest's own temporary folders are not); SLURM's commands reach it through its bin/ folder."""
    reason = cannot_run_slurm()
    if reason:
        pytest.skip(f"cannot run a SLURM cluster here: {reason}")
    state = Path(tempfile.mkdtemp(prefix="headstart-slurm-"))
    before = fingerprint(MACHINE_FILES)
    path = os.environ["PATH"]
    cluster_command(state, "start")
    os.environ["PATH"] = f"{state}/bin:{path}"  # the cluster's SLURM commands, as `cluster.sh env` says
    try:
        yield state, before
    finally:
        os.environ["PATH"] = path
        subprocess.run(
            ["bash", str(CLUSTER), "stop"], env={**os.environ, "HEADSTART_SLURM_STATE": str(state)}, timeout=120
        )
        shutil.rmtree(state, ignore_errors=True)
    assert fingerprint(MACHINE_FILES) == before, "the test cluster changed the machine's files"


# The tests of behaviour (not the README's command) ask SLURM for their jobs' states 2 s after a submission,
# not the profile's 20 (polite on a shared controller; the test cluster is the test's own): their jobs take
# seconds, and the plugin's wait grows by 10 s with each check that finds nothing finished.
QUICK_CHECKS = ("--slurm-init-seconds-before-status-checks", "2")


def run(repo: Path, *args: str, timeout: int = 1500) -> subprocess.CompletedProcess:
    # SIGINT, not SIGTERM: Snakemake cancels its SLURM jobs and exits on SIGINT.
    return subprocess.run(
        ["timeout", "-s", "INT", str(timeout), SNAKEMAKE, *args],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


def readme_slurm_command() -> list[str]:
    """`.venv/bin/snakemake --profile slurm all`, as workflow/docs/slurm.md shows it, without the program."""
    text = (ROOT / "workflow/docs/slurm.md").read_text()
    assert "`.venv/bin/snakemake --profile slurm all`" in text
    return shlex.split(".venv/bin/snakemake --profile slurm all")[1:]


def submitted_jobs(output: str) -> list[tuple[str, str]]:
    """(SLURM job id, 'rule_<name>' or 'group_<name>') of each submission a run's output reports."""
    return re.findall(r"SLURM jobid (\d+) \(log: \S+/((?:rule|group)_[a-z_0-9]+)/", output)


def check_submissions(output: str) -> list[tuple[str, str]]:
    """What every run of the profile does: extract gets a GPU slot, small jobs go in groups, light rules run
    on the submitting node and fine-tuning as SLURM jobs. Returns the submissions."""
    submitted = submitted_jobs(output)
    kinds = {kind for _, kind in submitted}
    extract_job = next(job for job, kind in submitted if kind == "rule_extract")
    seen = subprocess.run(["scontrol", "show", "job", extract_job], capture_output=True, text=True).stdout
    assert "JobState=COMPLETED" in seen and "TresPerJob=gres:gpu:1" in seen, seen  # asked for and got a GPU slot
    assert any(kind.startswith("group_small") for kind in kinds), kinds
    assert re.search(r"localrule fig1:", output) and "rule_finetune" in kinds, kinds
    return submitted


@pytest.fixture(scope="module")
def tiny_through_slurm(cluster, tmp_path_factory) -> tuple[Path, str]:
    """The README's SLURM command as typed, with the profile's own timings, in a fresh copy whose config.yaml
    is the tiny config merged into the default (as `--configfile tests/data/tiny.yaml` merges it); (the
    copy, the run's output). The fault tests start from copies of it."""
    repo = copy_repository(tmp_path_factory.mktemp("slurm") / "repo")
    config = yaml.safe_load((repo / "config.yaml").read_text())
    update_config(config, yaml.safe_load((repo / "tests/data/tiny.yaml").read_text()))
    (repo / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    # a guard against a run that never ends (a job pending for ever), not a speed limit
    result = run(repo, *readme_slurm_command(), timeout=3600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    return repo, output


@pytest.mark.slow
def test_the_readmes_command_runs_the_tiny_config_through_sbatch(tiny_through_slurm):
    repo, output = tiny_through_slurm
    submitted = check_submissions(output)
    # the tiny config: 2 shot levels x 2 seeds, each (shot level, seed) its own job
    assert sum(kind.startswith("rule_finetune") for _, kind in submitted) == 4
    assert (repo / EXP / "tables/answer.md").stat().st_size > 0 and (repo / EXP / "export/card.json").is_file()
    assert planned_jobs(run(repo, *readme_slurm_command(), "--dry-run")) == {}


@pytest.mark.scale
def test_the_readmes_command_runs_the_default_config_through_sbatch(cluster, tmp_path):
    """`snakemake --profile slurm all`, verbatim from the docs, on the default config, at its scale: every
    fine-tuning (shot level, seed) its own SLURM job (24), the small jobs in groups, and the answer table the
    README shows, within the seeds' intervals."""
    repo = copy_repository(tmp_path / "repo")
    # a guard against a run that never ends (a job pending for ever), not a speed limit
    result = run(repo, *readme_slurm_command(), timeout=3 * 3600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    submitted = check_submissions(output)
    assert sum(kind.startswith("rule_finetune") for _, kind in submitted) == 24  # 8 shot levels x 3 seeds
    assert_answer_as_in_readme(repo / EXP, readme_block("answer:head"))
    assert planned_jobs(run(repo, *readme_slurm_command(), "--dry-run")) == {}


@pytest.mark.slow
def test_a_failing_job_fails_once_with_one_line_and_keeps_its_logs(tiny_through_slurm, tmp_path):
    """A malformed word-vector file is not worth a retry (only decode, extract and finetune retry). In a copy
    of the finished tiny run, so that the word-vector job is the one job sent to SLURM."""
    repo = tmp_path / "repo"
    shutil.copytree(tiny_through_slurm[0], repo, symlinks=True)
    ragged = tmp_path / "ragged.txt"
    ragged.write_text("coat 1 0 0\nshirt 0 1\n")
    failing = tmp_path / "fail.yaml"
    failing.write_text(
        yaml.safe_dump(
            {
                "similarity": {
                    "measures": ["inference", "wordnet", "wordvec"],
                    "wordvec": {"vectors": str(ragged), "format": "auto"},
                }
            }
        )
    )
    failed = run(
        repo,
        f"{RUN}/sim/wordvec.parquet",
        "--profile",
        "slurm",
        *QUICK_CHECKS,
        "--configfile",
        "tests/data/tiny.yaml",
        str(failing),
        timeout=900,
    )
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0
    assert output.count("Error in rule similarity_wordvec") == 1 and "Trying to restart" not in output
    log = (repo / "results/logs/similarity_wordvec/fashion_mnist/efficientnet_lite0.log").read_text()
    assert f"headstart: word-vector file {ragged} (glove_text) cannot be read: line 2 has 3 fields" in log
    assert "Traceback" not in log
    assert list((repo / "results/logs/slurm").rglob("*.log")), "the failed job's SLURM log is kept"


@pytest.mark.slow
def test_the_cpu_only_command_keeps_the_limits_and_drops_the_gpu(cluster, tmp_path):
    """The docs' command for a cluster without GPUs, verbatim, as a dry run: extract and finetune get no
    GPU but keep the workflow profile's memory and time limits."""
    command = next(
        line.strip()
        for line in (ROOT / "workflow/docs/slurm.md").read_text().splitlines()
        if line.strip().startswith(".venv/bin/snakemake --profile slurm all --set-resources")
    )
    workflow_profile = yaml.safe_load((ROOT / "profiles/default/config.yaml").read_text())
    repo = copy_repository(tmp_path / "repo")
    result = run(repo, *command.split()[1:], "--dry-run")
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    planned = result.stdout + result.stderr
    for rule in ("extract", "finetune", "finetune_export"):
        limits = workflow_profile["set-resources"][rule]
        block = planned.split(f"rule {rule}:")[1].split("\n\n")[0]
        resources = re.search(r"resources: (.*)", block).group(1)
        # fine-tuning's memory is its rule's: 4 GB for the default's head on cached features
        assert f"mem_mb={limits.get('mem_mb', 4000)}" in resources and f"runtime={limits['runtime']}" in resources
        assert "gpu=0" in resources, resources


@pytest.mark.slow
def test_no_cluster_job_needs_the_network(cluster, tmp_path, http_root):
    """On a node without internet (`cluster.sh offline`: every job step gets a proxy nothing answers), a run
    whose images (ImageNet-21k archives from url_template) and model weights (a url) are downloads goes
    through extraction: the downloads are localrules, on the submitting host; the cluster jobs read files."""
    import importlib.resources

    from test_data import jpeg_bytes, make_tar

    from conftest import QuietHandler

    served, base = http_root
    repo = copy_repository(tmp_path / "repo")
    synsets = {"n03057021": "coat.n.01", "n04133789": "sandal.n.01", "n04197391": "shirt.n.01"}
    lists = {"train": [], "test": []}
    for number, wnid in enumerate(synsets):
        names = [f"{wnid}_{i}.JPEG" for i in range(15)]
        make_tar(served / f"{wnid}.tar", {name: jpeg_bytes(100 * number + i) for i, name in enumerate(names)})
        lists["train"] += names[:12]
        lists["test"] += names[12:]
    for pool, names in lists.items():
        (repo / f"{pool}.txt").write_text("\n".join(names) + "\n")
    lite0 = yaml.safe_load((ROOT / "config.yaml").read_text())["models"]["efficientnet_lite0"]
    package, _, relative = lite0["weights"]["package_file"].partition(":")
    shutil.copy(importlib.resources.files(package).joinpath(relative), served / "lite0.pth")
    override = {
        "dataset": {
            "name": "offline21k",
            "source": "imagenet21k",
            "imagenet21k": {"train_list": "train.txt", "test_list": "test.txt", "url_template": base + "/{wnid}.tar"},
            "classes": [{"synset": name} for name in synsets.values()],
        },
        "split": {"train_per_class": 10, "val_per_class": 2, "test_per_class": 3},
        "finetune": {"shots": [5, 1]},
        "models": {"efficientnet_lite0": {**lite0, "weights": {"package_file": None, "url": base + "/lite0.pth"}}},
    }
    (repo / "offline.yaml").write_text(yaml.safe_dump(override))
    features = "results/offline21k/efficientnet_lite0/extract/features_test.safetensors"
    cluster_command(cluster[0], "offline")
    try:
        # the control: a job step on this node cannot download
        probe = subprocess.run(
            ["srun", "python3", "-c", f"import urllib.request; urllib.request.urlopen('{base}/lite0.pth')"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert probe.returncode != 0 and "Connection refused" in probe.stderr, probe.stderr[-500:]
        QuietHandler.requests_seen.clear()
        result = run(
            repo, "--profile", "slurm", *QUICK_CHECKS, features, "--configfile", "tests/data/tiny.yaml", "offline.yaml"
        )
    finally:
        cluster_command(cluster[0], "online")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    text = result.stdout + result.stderr
    for rule in ["download_archive", "model_weights"]:
        assert f"localrule {rule}:" in text
    for rule in ["dataset", "source_head", "extract"]:  # sent to SLURM (printed as "rule", not "localrule")
        assert re.search(rf"^rule {rule}:", text, re.MULTILINE), rule
    assert sorted(seen[":path"] for seen in QuietHandler.requests_seen) == sorted(
        ["/lite0.pth", *(f"/{wnid}.tar" for wnid in synsets)]
    )
    classes = pd.read_parquet(repo / "results/offline21k/classes.parquet")
    assert sorted(classes["class_id"]) == sorted(synsets)
    assert (repo / features).is_file()
    assert not list((repo / "results/offline21k/downloads").glob("*.tar"))  # temp(): gone once extracted


TARGET_JOB = f"{EXP}/runs/shots20/seed0.parquet"  # the one fine-tuning job of the tests below


def one_finetuning_job(tiny, tmp_path, iterations: int, eval_every: int) -> tuple[Path, list[str]]:
    """A copy of the finished tiny run ``tiny`` (the README's command's, through SLURM) whose one fine-tuning
    job (TARGET_JOB, 20 images per class) has everything it needs built, so that only it goes to SLURM; the
    tiny run's own job of that level (its curves, checkpoint and logs) removed; (repo, the config arguments)."""
    repo = tmp_path / "repo"
    shutil.copytree(tiny, repo, symlinks=True)
    shutil.rmtree(repo / EXP / "runs/shots20")
    for log in (repo / "results/logs/finetune/fashion_mnist/efficientnet_lite0/head").glob("shots20_seed0*"):
        log.unlink()
    options = {"finetune": {"shots": [20], "iterations": iterations, "eval_every": eval_every}}
    (repo / "job.yaml").write_text(yaml.safe_dump(options))
    config = ["--configfile", "tests/data/tiny.yaml", "job.yaml"]
    local = run(repo, "--cores", "2", TARGET_JOB, *config, "--omit-from", "finetune_export")
    assert local.returncode == 0, (local.stdout + local.stderr)[-3000:]
    assert planned_jobs(local) == {}, "the job's inputs are the tiny run's"
    return repo, config


def training_process(repo: Path) -> int:
    """The pid of the fine-tuning script a SLURM job of ``repo`` runs (Snakemake runs it from .snakemake/scripts)."""
    found = subprocess.run(["pgrep", "-f", f"{repo}/.snakemake/scripts/.*finetune"], capture_output=True, text=True)
    pids = found.stdout.split()
    assert len(pids) == 1, found
    return int(pids[0])


@pytest.mark.slow
def test_a_rerun_after_a_killed_client_waits_for_its_orphaned_job(tiny_through_slurm, tmp_path):
    """The docs' steps after `kill -9` of the Snakemake client while a fine-tuning job runs under SLURM:
    `--unlock`, then the same command. The job is submitted again while its orphan still runs; the second
    attempt waits on the orphan's lock, then writes the curves the orphan finished, without training. The
    orphan is paused (SIGSTOP) until the second attempt waits on it, so that no machine is too fast for it."""
    import signal

    repo, config = one_finetuning_job(tiny_through_slurm[0], tmp_path, iterations=3000, eval_every=1500)
    target = TARGET_JOB
    log = repo / "results/logs/finetune/fashion_mnist/efficientnet_lite0/head/shots20_seed0.log"
    client = subprocess.Popen(
        [SNAKEMAKE, "--profile", "slurm", *QUICK_CHECKS, target, *config],
        cwd=repo,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for _ in range(1200):  # until the job trains (it holds its lock from then on)
            if log.exists() and "runs in lockstep" in log.read_text():
                break
            time.sleep(0.25)
        else:
            raise AssertionError("the fine-tuning job never started under SLURM")
        orphan = training_process(repo)
        os.kill(orphan, signal.SIGSTOP)
    finally:
        os.killpg(client.pid, signal.SIGKILL)  # the client dies; its SLURM job does not
        client.wait()
    orphans = subprocess.run(["squeue", "-h", "-o", "%i %k"], capture_output=True, text=True).stdout
    assert "finetune" in orphans, orphans
    assert run(repo, "--profile", "slurm", target, *config, "--unlock").returncode == 0
    second = subprocess.Popen(
        ["timeout", "-s", "INT", "1500", SNAKEMAKE, "--profile", "slurm", *QUICK_CHECKS, target, *config],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        for _ in range(2400):  # until the resubmitted job waits on the orphan's lock
            if log.exists() and "another attempt of this job holds" in log.read_text():
                break
            time.sleep(0.25)
        else:
            raise AssertionError("the resubmitted job never waited on the orphan")
    finally:
        os.kill(orphan, signal.SIGCONT)
    output, _ = second.communicate(timeout=1500)
    assert second.returncode == 0, output[-4000:]
    text = log.read_text()  # the resubmitted job's (Snakemake removed the orphan's log when it resubmitted)
    assert "another attempt of this job holds" in text and "holds the finished curves" in text
    attempts = log.with_name("shots20_seed0.attempts.log").read_text()  # the orphan's and the resubmitted job's
    assert attempts.count("--- attempt:") == attempts.count("runs in lockstep") == 2
    curves = pd.read_parquet(repo / target)
    assert curves["iteration"].max() == 3000


@pytest.mark.slow
def test_a_job_past_its_time_limit_is_retried_and_resumes_from_its_checkpoint(tiny_through_slurm, tmp_path):
    """A fine-tuning job that runs past its SLURM time limit is ended by SLURM (TIMEOUT); Snakemake retries
    it, and the retry resumes from the last checkpoint instead of iteration 0. Once it has written a
    checkpoint the job is paused (SIGSTOP: a job that makes no progress, on any machine's speed) and its
    limit lowered to 1 minute."""
    import signal

    repo, config = one_finetuning_job(tiny_through_slurm[0], tmp_path, iterations=6000, eval_every=500)
    target = TARGET_JOB
    client = subprocess.Popen(
        [SNAKEMAKE, "--profile", "slurm", *QUICK_CHECKS, target, *config],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    checkpoint = repo / EXP / "runs/shots20/seed0.checkpoint.pt"
    for _ in range(2400):
        if checkpoint.exists():
            break
        time.sleep(0.25)
    else:
        client.kill()
        raise AssertionError("the fine-tuning job wrote no checkpoint")
    os.kill(training_process(repo), signal.SIGSTOP)  # SLURM's timeout sends SIGCONT before SIGTERM
    jobs = subprocess.run(["squeue", "-h", "-o", "%i %k"], capture_output=True, text=True).stdout.splitlines()
    job = next(line.split()[0] for line in jobs if "finetune_export" in line)
    subprocess.run(["scontrol", "update", f"JobId={job}", "TimeLimit=1"], check=True)
    output, _ = client.communicate(timeout=1200)
    assert client.returncode == 0, output[-4000:]
    assert f"SLURM-job '{job}' failed, SLURM status is: 'TIMEOUT'" in output
    # Snakemake removed the first attempt's log before the retry; every attempt is in the attempts log
    log = (repo / "results/logs/finetune/fashion_mnist/efficientnet_lite0/head/shots20_seed0.attempts.log").read_text()
    assert log.count("--- attempt:") == 2, log[-2000:]
    resumed = [int(n) for n in re.findall(r"resuming \S+ from iteration (\d+)", log)]
    assert len(resumed) == 1 and resumed[0] > 0, log[-2000:]
    assert pd.read_parquet(repo / target)["iteration"].max() == 6000


@pytest.mark.slow
def test_the_test_cluster_lives_in_its_own_folder(cluster):
    """The cluster's configuration and munge are its folder's; the machine's SLURM and munge files are as they
    were, byte for byte (checked again once it stops)."""
    state, before = cluster
    env = {**os.environ, "HEADSTART_SLURM_STATE": str(state)}
    printed = subprocess.run(["bash", str(CLUSTER), "env"], env=env, capture_output=True, text=True, check=True)
    assert printed.stdout.strip() == f"export PATH={state}/bin:$PATH"
    assert os.environ["PATH"].startswith(f"{state}/bin:")
    assert (
        shutil.which("srun") == f"{state}/bin/srun"
        and f"SLURM_CONF={state}/slurm.conf" in Path(shutil.which("srun")).read_text()
    )
    conf = (state / "slurm.conf").read_text()
    assert f"AuthInfo=socket={state}/munge/munge.socket" in conf and f"StateSaveLocation={state}/ctld" in conf
    assert fingerprint(MACHINE_FILES) == before
