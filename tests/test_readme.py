"""Every fenced block in README.md works as written (issue #27, item 2).

How a block is checked depends on its fence's language:

- yaml: a recipe, usually a partial one (what it leaves out takes its default), read as a file in recipes/ (so
  `base_recipe:` names resolve there): it loads with `rlhf_ads.config.load`. Loading needs no GPU or hub.
- jsonl: the rows of the data file a `<!-- file: NAME -->` line before the block names: `rlhf-ads data check`
  passes them, and the commands of the other blocks find the file under that name.
- bash, sh, console: command lines (`#` starts a comment; in a console block `$ ` starts a command and the lines
  after it are what it prints). `rlhf-ads config`, `data` and `lint` run. The stages (`generate`, `sft`, `reward`,
  `ppo`, `pipeline`, `evaluate`) are dry-run: the command line parses, the recipe loads with its overrides and
  the local data files the stage reads exist (running a stage is the stage tests' job). `rlhf-ads annotate`:
  `add-designer` runs, the others are dry-run (`check_annotate`; tests/annotate/ runs them). A console block's
  printed lines are the error its dry run gives. `make T`: T is a Makefile target. `accelerate launch ...
  scripts/S.py --config R [key=value ...]`: the config file and the script exist, and the recipe loads.
- python: compiles.
- text: a picture, not checked.

A block of commands after `<!-- needs: gpu -->`, `<!-- needs: hub -->` or `<!-- needs: gpu, hub -->` is only
dry-run. The marker must be there when a command needs it: an `accelerate launch` line without
`ACCELERATE_USE_CPU=true` or `DS_ACCELERATOR=cpu` needs a GPU, a recipe whose `model.base` is neither bundled nor
local needs the hub.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rlhf_ads import cli, config
from rlhf_ads.config import DataSource
from rlhf_ads.data.bundled import parse_bundled_ref
from rlhf_ads.errors import RlhfAdsError
from tests.helpers import REPO

README = REPO / "README.md"
FENCE = re.compile(r"^```(\S*)\s*$")
MARKER = re.compile(r"^<!--\s*(needs|file):\s*(.+?)\s*-->$")
LANGUAGES = {"yaml", "jsonl", "bash", "sh", "console", "python", "text"}
RUN = {"config", "data", "lint"}  # commands that take seconds: run them; the stages are dry-run
LINKED = ("recipes", "scripts", "Makefile", "accelerate_config.yaml")  # what commands name, relative to the repo


@dataclass
class Block:
    language: str
    line: int  # of the opening fence, 1-based
    body: list[str]
    needs: set[str] = field(default_factory=set)
    file: str | None = None

    def __str__(self) -> str:
        return f"README.md:{self.line} {self.language or '(no language)'}"


def readme_blocks(text: str) -> list[Block]:
    """The fenced blocks in order, each with the `needs`/`file` markers on the lines just before it."""
    lines, blocks, pending, i = text.splitlines(), [], {}, 0
    while i < len(lines):
        marker, fence = MARKER.match(lines[i].strip()), FENCE.match(lines[i])
        if marker:
            pending[marker[1]] = marker[2]
        elif fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            needs = {n.strip() for n in pending.get("needs", "").split(",") if n.strip()}
            blocks.append(Block(fence[1], i + 1, lines[i + 1:end], needs, pending.get("file")))
            pending, i = {}, end
        elif lines[i].strip():
            pending = {}  # a marker belongs to the block right after it
        i += 1
    return blocks


BLOCKS = readme_blocks(README.read_text(encoding="utf-8"))


def commands(block: Block) -> list[tuple[str, list[str]]]:
    """(command line, what it prints) for each command of a shell or console block; continuation lines joined."""
    out: list[tuple[str, list[str]]] = []
    joined: list[str] = []
    for line in block.body:
        if joined and joined[-1].endswith("\\"):
            joined[-1] = joined[-1][:-1] + " " + line.strip()
        else:
            joined.append(line)
    for line in joined:
        if block.language == "console":
            if line.startswith("$ "):
                out.append((line[2:], []))
            elif out:
                out[-1][1].append(line)
        elif shlex.split(line, comments=True):
            out.append((line, []))
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A folder where the README's commands run: the repository's recipes, scripts and Makefile as links, and the
    data files its jsonl blocks spell out."""
    folder = tmp_path_factory.mktemp("readme")
    for name in LINKED:
        (folder / name).symlink_to(REPO / name)
    (folder / "block_recipes").mkdir()
    for recipe in (REPO / "recipes").glob("*.yaml"):
        (folder / "block_recipes" / recipe.name).symlink_to(recipe)
    for block in BLOCKS:
        if block.language == "jsonl":
            assert block.file, f"{block}: name the file with <!-- file: NAME --> before the block"
            (folder / block.file).write_text("\n".join(block.body) + "\n", encoding="utf-8")
    return folder


def test_the_readme_has_blocks_of_every_checked_kind():
    languages = {block.language for block in BLOCKS}
    assert {"yaml", "bash", "console", "jsonl"} <= languages
    assert not languages - LANGUAGES, f"no convention for {languages - LANGUAGES}: add one to {__name__}"


@pytest.mark.parametrize("block", BLOCKS, ids=str)
def test_block_works_as_written(block, workdir, monkeypatch, capsys):
    monkeypatch.chdir(workdir)
    assert block.language in LANGUAGES, f"{block}: give the fence a language ({', '.join(sorted(LANGUAGES))})"
    assert block.needs <= {"gpu", "hub"}, f"{block}: unknown needs marker {block.needs}"
    if block.language == "yaml":
        recipe_file = workdir / "block_recipes" / f"readme_block_{block.line}.yaml"
        recipe_file.write_text("\n".join(block.body) + "\n", encoding="utf-8")
        config.load(recipe_file)
    elif block.language == "jsonl":
        assert cli.main(["data", "check", block.file]) == 0, capsys.readouterr().out
    elif block.language == "python":
        compile("\n".join(block.body), str(block), "exec")
    elif block.language in ("bash", "sh", "console"):
        found = commands(block)
        assert found, f"{block}: no command in it"
        for line, printed in found:
            check_command(line, printed, block, capsys)


def check_command(line: str, printed: list[str], block: Block, capsys) -> None:
    tokens = shlex.split(line, comments=True)
    env = {}
    while tokens and re.match(r"^[A-Z_][A-Z0-9_]*=", tokens[0]):
        key, value = tokens.pop(0).split("=", 1)
        env[key] = value
    where = f"{block}: `{line.strip()}`"
    if tokens[0] == "make":
        makefile = (REPO / "Makefile").read_text()
        for target in tokens[1:]:
            assert re.search(rf"^{re.escape(target)}:", makefile, re.M), f"{where}: no Makefile target '{target}'"
    elif tokens[0] == "rlhf-ads":
        check_rlhf_ads(tokens[1:], printed, block, where, capsys)
    elif tokens[:2] == ["accelerate", "launch"]:
        check_accelerate_launch(tokens[2:], env, block, where)
    else:
        pytest.fail(f"{where}: no convention for checking '{tokens[0]}' commands; add one to {__name__}")


def check_rlhf_ads(argv: list[str], printed: list[str], block: Block, where: str, capsys) -> None:
    args = cli.parse_args(argv)
    if args.command == "annotate":
        check_annotate(args, argv, block, where, capsys)
        return
    if args.command in RUN and not block.needs:
        code = cli.main(argv)
        captured = capsys.readouterr()
        output = (captured.out + captured.err).splitlines()
        assert code == (2 if printed and printed[0].startswith("rlhf-ads: error") else 0), f"{where}:\n{output}"
        assert all(line in output for line in printed), f"{where}: printed {output}, the README says {printed}"
        return
    recipe_path, overrides = cli._split_recipe(args)
    try:
        recipe = config.load(recipe_path, overrides)
    except RlhfAdsError as exc:
        assert printed == [f"rlhf-ads: error: {exc}"], f"{where}: {exc}"
        return
    assert not printed, f"{where}: loads, but the README shows it printing {printed}"
    check_hub(recipe, block)
    check_stage_data(recipe, args.command, where)


def check_annotate(args, argv: list[str], block: Block, where: str, capsys) -> None:
    """`annotate add-designer` runs (a database in the work folder); the others are dry-run: `candidates` loads its
    recipe and finds its local briefs file, `serve` reads its candidates files as the app would, `export` finds the
    sources it mixes in. Databases, reward models and checkpoints come from earlier commands and are not checked."""
    from rlhf_ads.annotate.candidates import read_candidates

    local = [source for source in ([args.briefs] if getattr(args, "briefs", None) else []) + getattr(args, "mix", [])
             if parse_bundled_ref(source) is None]
    assert all(Path(source).exists() for source in local), f"{where}: reads {local}, not all there"
    if args.annotate_command == "add-designer" and not block.needs:
        assert cli.main(argv) == 0, f"{where}: {capsys.readouterr()}"
    elif args.annotate_command == "candidates":
        recipe = config.load(*cli._split_recipe(args))
        check_hub(recipe, block)
    elif args.annotate_command == "serve":
        for path in args.candidates:
            read_candidates(path, briefs=args.briefs)


def check_accelerate_launch(tokens: list[str], env: dict[str, str], block: Block, where: str) -> None:
    script = next(i for i, token in enumerate(tokens) if token.endswith(".py"))
    options = tokens[:script]
    if "--config_file" in options:
        config_file = options[options.index("--config_file") + 1]
        assert (REPO / config_file).is_file(), f"{where}: no accelerate config file {config_file}"
    assert (REPO / tokens[script]).is_file(), f"{where}: no script {tokens[script]}"
    stage = Path(tokens[script]).stem
    args = launcher().parse_args(stage, tokens[script + 1:])
    recipe = config.load(args.config, args.overrides)
    on_cpu = env.get("ACCELERATE_USE_CPU") == "true" or env.get("DS_ACCELERATOR") == "cpu"
    assert on_cpu or "gpu" in block.needs, f"{where}: runs on GPUs; mark the block <!-- needs: gpu -->"
    check_hub(recipe, block)
    check_stage_data(recipe, stage, where)


def launcher():
    spec = importlib.util.spec_from_file_location("readme_launch", REPO / "scripts" / "_launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_hub(recipe: config.Recipe, block: Block) -> None:
    from rlhf_ads.modeling import BUNDLED_MODELS

    base = recipe.model.base
    from_hub = base not in BUNDLED_MODELS and not Path(base).exists() and not base.endswith(".gguf")
    assert not from_hub or "hub" in block.needs, f"{block}: model.base '{base}' comes from the hub; mark the block " \
                                                 "<!-- needs: hub -->"


def check_stage_data(recipe: config.Recipe, stage: str, where: str) -> None:
    """The local data files a stage's section names exist (bundled data always does)."""
    section = getattr(recipe, stage, None)
    if section is None or stage == "pipeline":  # every stage the recipe's pipeline runs
        for name in recipe.pipeline:
            check_stage_data(recipe, name, where)
        return
    sources = [value for value in vars(section).values() if isinstance(value, DataSource)]
    for source in sources:
        if parse_bundled_ref(source.path) is None:
            assert Path(source.path).exists(), f"{where}: {stage} reads {source.path}, which is not there"


def test_markers_and_conventions_catch_what_they_should(tmp_path):
    """The checker itself: a block whose data key is unknown fails to load, an unmarked GPU launch is refused, and
    markers attach to the block right after them only."""
    text = ("<!-- needs: gpu -->\n```bash\nmake test\n```\n\n<!-- needs: hub -->\nsome words\n```yaml\nseed: 1\n```\n")
    gpu, plain = readme_blocks(text)
    assert gpu.needs == {"gpu"} and plain.needs == set() and plain.body == ["seed: 1"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  path: my_prefs.csv\n")
    with pytest.raises(RlhfAdsError, match="unknown key 'data'"):
        config.load(bad)
    launch = Block("bash", 1, [])
    with pytest.raises(AssertionError, match="needs: gpu"):
        check_accelerate_launch(["--config_file", "recipes/accelerate/zero2.yaml", "scripts/sft.py", "--config",
                                 str(REPO / "recipes/quickstart.yaml")], {}, launch, "here")
