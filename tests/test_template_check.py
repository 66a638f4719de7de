"""template_warnings: a single-brace placeholder in a '{{' file, an input no template uses, a clean template."""

from profit.studyfile import StudyFile
from profit.template_check import MAX_FILE_BYTES, template_warnings

VARIABLES = "variables:\n  u: Uniform(0, 1)\n  v: Halton()\n  c: 3\n  f: Output\n"


def study(folder, run="run:\n  command: ./simulation\n", files=None):
    """A study in ``folder`` with the template ``files`` (relative path -> text or bytes)."""
    (folder / "profit.yaml").write_text("ntrain: 2\n" + VARIABLES + run)
    for name, content in (files or {}).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)
    return StudyFile.load(str(folder))


def test_clean_template_has_no_warnings(tmp_path):
    files = {
        "template/input.json": '{"u": {{u}}, "v": {{ v:.3f}}, "c": {{c}}}\n',
        "template/simulation": "#!/bin/sh\necho {u} {v}\n",
    }
    assert template_warnings(study(tmp_path, files=files)) == []


def test_single_brace_in_a_double_brace_file(tmp_path):
    files = {"template/input.json": '{"u": {u}, "u2": {u:.3f}, "v": {{v}}, "other": {w}}\n'}
    assert template_warnings(study(tmp_path, files=files)) == [
        "profit.yaml: template/input.json uses {{name}} placeholders (it contains '{{'), "
        "so {u} is left as it is; write {{u}}"
    ]


def test_single_brace_with_a_format_names_it(tmp_path):
    files = {"template/sub/params.txt": "{{v}}\nx = {u:.2e}\n"}
    assert template_warnings(study(tmp_path, files=files)) == [
        "profit.yaml: template/sub/params.txt uses {{name}} placeholders (it contains '{{'), "
        "so {u:.2e} is left as it is; write {{u:.2e}}"
    ]


def test_unused_input(tmp_path):
    files = {"template/input.txt": "u = {u}\n"}
    assert template_warnings(study(tmp_path, files=files)) == [
        "profit.yaml: input v is used by no template file and not by the command; "
        "every run gets the same simulation for any v"
    ]


def test_an_input_named_by_the_command_is_used(tmp_path):
    files = {"template/input.txt": "u = {u}\n"}
    run = "run:\n  command: ./simulation --v $v\n"
    assert template_warnings(study(tmp_path, run=run, files=files)) == []


def test_binary_files_and_unfilled_files_do_not_count(tmp_path):
    files = {
        "template/input.txt": "u = {u}\n",
        "template/mesh.bin": b"\xff\xfe {v} {{",
        "template/other.txt": "v = {v}\n",
    }
    run = "run:\n  command: ./simulation\n  pre: {class: template, param_files: [input.txt]}\n"
    assert template_warnings(study(tmp_path, run=run, files=files)) == [
        "profit.yaml: input v is used by no template file and not by the command; "
        "every run gets the same simulation for any v"
    ]


def test_template_path(tmp_path):
    files = {"templ/input.json": "{{u}} {v}\n"}
    run = "run:\n  pre: {class: template, path: templ}\n"
    assert template_warnings(study(tmp_path, run=run, files=files)) == [
        "profit.yaml: templ/input.json uses {{name}} placeholders (it contains '{{'), "
        "so {v} is left as it is; write {{v}}"
    ]


def test_no_template_no_warnings(tmp_path):
    assert template_warnings(study(tmp_path)) == []


def test_other_worker_or_preprocessor_no_warnings(tmp_path):
    files = {"template/input.txt": "nothing\n"}
    assert template_warnings(study(tmp_path, run="run:\n  worker: other\n", files=files)) == []
    assert template_warnings(study(tmp_path, run="run:\n  pre: mine\n", files=files)) == []


def test_a_large_file_is_read_in_part(tmp_path):
    # 'v' lies beyond the part read: no claim that v is unused; the part read is still checked.
    files = {"template/big.txt": "{{u}} {u}\n" + "x" * MAX_FILE_BYTES + "{{v}}\n"}
    assert template_warnings(study(tmp_path, files=files)) == [
        "profit.yaml: template/big.txt uses {{name}} placeholders (it contains '{{'), "
        "so {u} is left as it is; write {{u}}"
    ]


def test_warnings_agree_with_fill_templates(tmp_path):
    """What the first warning says is left is left by the preprocessor's fill_templates."""
    from profit.run.command import fill_templates

    text = '{"u": {u}, "v": {{v}}}\n'
    file = study(tmp_path, files={"template/input.json": text})
    assert template_warnings(file)
    fill_templates(str(tmp_path / "template"), {"u": 0.5, "v": 0.25, "c": 3})
    assert (tmp_path / "template/input.json").read_text() == '{"u": {u}, "v": 0.25}\n'


def test_linked_file_counts_only_when_named(tmp_path):
    (tmp_path / "shared.txt").write_text("{u} {v}\n")
    (tmp_path / "template").mkdir()
    (tmp_path / "template/link.txt").symlink_to(tmp_path / "shared.txt")
    file = study(tmp_path)
    assert len(template_warnings(file)) == 2  # the link is shared, never filled: u and v unused
    run = "run:\n  pre: {class: template, param_files: link.txt}\n"
    assert template_warnings(study(tmp_path, run=run)) == []
