#!/usr/bin/env python3
"""Checks of the podflow chart that helm and kubernetes-validate do not make (charts/check.sh runs them).

  crds SCHEMA_DIR        stdin: rendered manifests. Validates the custom-resource kinds kubernetes-validate has
                         no schema for (ServiceMonitor, cert-manager Certificate and Issuer) against the
                         strict JSON schemas in SCHEMA_DIR, writes every other document to stdout.
  flags BIN_DIR PENDING  stdin: rendered manifests. Every --flag a podflow container passes must be one its
                         binary's --help lists, or be listed in PENDING (contract flags not built yet).
  image DOCKERFILE MANIFEST...
                         The Dockerfile builds and installs exactly the workspace's podflow binaries (names
                         from cargo metadata) under /usr/local/bin, and every podflow container of the
                         rendered manifests runs one of them.
  dashboards GRAFANA_DIR CHART_DASHBOARD_DIR
                         Every chart dashboard is a JSON dashboard; when GRAFANA_DIR has dashboards, the chart
                         holds exactly the same files, byte for byte.
  schema VALUES SCHEMA   Every value in values.yaml is described in values.schema.json (type, description),
                         and the schema allows no key values.yaml lacks.
  values-table [--write] VALUES SCHEMA MARKDOWN...
                         The table of every value (name, type, default from values.yaml, description from
                         values.schema.json) between the lines <!-- values-table:begin --> and
                         <!-- values-table:end --> of each MARKDOWN file is up to date; --write rewrites it.
Each prints what it found and exits 1 on a failure.
"""

import json
import pathlib
import re
import subprocess
import sys

import jsonschema
import yaml


def load_stream(text):
    """Documents of a YAML stream, empty ones left out."""
    return [d for d in yaml.safe_load_all(text) if d]


def doc_name(doc):
    return f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def cmd_crds(schema_dir):
    schemas = {}
    for path in sorted(pathlib.Path(schema_dir).glob("*.json")):
        schema = json.loads(path.read_text())
        props = schema["properties"]
        schemas[(props["apiVersion"]["const"], props["kind"]["const"])] = schema
    failed = False
    rest = []
    for doc in load_stream(sys.stdin.read()):
        key = (doc.get("apiVersion"), doc.get("kind"))
        if key not in schemas:
            rest.append(doc)
            continue
        errors = sorted(jsonschema.Draft7Validator(schemas[key]).iter_errors(doc), key=str)
        for err in errors:
            path = ".".join(str(p) for p in err.absolute_path)
            print(f"ERROR {doc_name(doc)} ({key[0]}): {path}: {err.message}", file=sys.stderr)
        failed |= bool(errors)
        if not errors:
            print(f"crd ok: {doc_name(doc)} ({key[0]})", file=sys.stderr)
    sys.stdout.write(yaml.safe_dump_all(rest, sort_keys=False))
    return 1 if failed else 0


OPTION = re.compile(r"^\s+(?:-[A-Za-z], )?(--[a-z0-9][a-z0-9-]*)")


def help_flags(argv):
    """The long options a --help lists, or None when the command does not exist."""
    run = subprocess.run(argv + ["--help"], capture_output=True, text=True)
    if run.returncode != 0:
        return None
    return {m.group(1) for line in run.stdout.splitlines() if (m := OPTION.match(line))}


def containers(docs):
    for doc in docs:
        spec = doc.get("spec", {}).get("template", {}).get("spec", {})
        for c in spec.get("containers", []) + spec.get("initContainers", []):
            yield doc, c


def cmd_flags(bin_dir, pending_file):
    pending = set()
    for line in pathlib.Path(pending_file).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            pending.add(tuple(line.split()))
    helps = {}
    failed = False
    checked = 0
    for doc, c in containers(load_stream(sys.stdin.read())):
        command = c.get("command", [])
        if not command or not pathlib.PurePath(command[0]).name.startswith("podflow-"):
            continue
        binary = pathlib.PurePath(command[0]).name
        args = list(c.get("args", []))
        prog = [binary]
        if args and not args[0].startswith("-"):
            prog.append(args.pop(0))
        key = tuple(prog)
        if key not in helps:
            helps[key] = help_flags([str(pathlib.Path(bin_dir) / binary)] + prog[1:])
        known = helps[key]
        for arg in args:
            if not arg.startswith("--"):
                continue
            flag = arg.split("=", 1)[0]
            checked += 1
            if known is not None and flag in known:
                if key + (flag,) in pending:
                    print(f"note: {' '.join(key)} {flag} exists now; drop it from {pending_file}")
                continue
            if key + (flag,) in pending:
                continue
            where = "no such subcommand" if known is None else "not in --help"
            print(f"ERROR {doc_name(doc)} container {c['name']}: {' '.join(key)} {flag}: {where}")
            failed = True
    print(f"flags: {checked} checked against the binaries' --help")
    return 1 if failed else 0


def workspace_bins():
    meta = json.loads(subprocess.run(["cargo", "metadata", "--no-deps", "--locked", "--format-version", "1"],
                                     capture_output=True, text=True, check=True).stdout)
    bins = {}
    for pkg in meta["packages"]:
        for target in pkg["targets"]:
            if "bin" in target["kind"]:
                bins.setdefault(pkg["name"], set()).add(target["name"])
    return bins


def cmd_image(dockerfile, manifests):
    text = pathlib.Path(dockerfile).read_text()
    failed = False

    def fail(msg):
        nonlocal failed
        print(f"ERROR {msg}")
        failed = True

    built = set()
    for m in re.finditer(r"cargo build[^\n]*", text):
        built |= set(re.findall(r"-p\s+([A-Za-z0-9_-]+)", m.group(0)))
    installed = set(re.findall(r"^COPY\s+--from=\S+\s+\S+/release/(\S+)\s+/usr/local/bin/(\S+)\s*$", text, re.M))
    bins = workspace_bins()
    expected = set()
    for pkg in sorted(built):
        if pkg not in bins:
            fail(f"Dockerfile builds -p {pkg}, which has no binary in the workspace")
            continue
        expected |= bins[pkg]
    if not built:
        fail("Dockerfile: no `cargo build -p ...` line")
    for src, dst in sorted(installed):
        if src != dst:
            fail(f"Dockerfile installs {src} as /usr/local/bin/{dst}: the names differ")
    names = {dst for _, dst in installed}
    for missing in sorted(expected - names):
        fail(f"Dockerfile builds {missing} but does not copy it to /usr/local/bin")
    for extra in sorted(names - expected):
        fail(f"Dockerfile copies {extra}, which the packages it builds do not produce")
    if "podflow-exporter" in names and not re.search(
            r"setcap\s+cap_net_raw,cap_net_admin\+eip\s+/usr/local/bin/podflow-exporter", text):
        fail("Dockerfile: podflow-exporter gets no file capabilities (setcap cap_net_raw,cap_net_admin+eip)")
    commands = set()
    for manifest in manifests:
        for doc, c in containers(load_stream(pathlib.Path(manifest).read_text())):
            if c.get("command"):
                commands.add(c["command"][0])
    for cmd in sorted(commands):
        path = pathlib.PurePath(cmd)
        if str(path.parent) != "/usr/local/bin" or path.name not in names:
            fail(f"the chart runs {cmd}, which the image does not install")
    print(f"image: packages {sorted(built)}, binaries {sorted(names)}, chart commands {sorted(commands)}")
    return 1 if failed else 0


def cmd_dashboards(grafana_dir, chart_dir):
    failed = False
    chart = {p.name: p for p in sorted(pathlib.Path(chart_dir).glob("*.json"))}
    if not chart:
        print(f"ERROR {chart_dir} holds no dashboard")
        return 1
    for name, path in chart.items():
        try:
            dash = json.loads(path.read_bytes())
        except ValueError as e:
            print(f"ERROR {path}: not JSON: {e}")
            failed = True
            continue
        if not isinstance(dash, dict) or not dash.get("title") or not dash.get("uid"):
            print(f"ERROR {path}: a dashboard needs a title and a uid")
            failed = True
    grafana = {p.name: p for p in sorted(pathlib.Path(grafana_dir).glob("*.json"))}
    if grafana:
        for name in sorted(set(grafana) | set(chart)):
            if name not in chart:
                print(f"ERROR {grafana_dir}/{name} is missing from {chart_dir} (copy it there)")
                failed = True
            elif name not in grafana:
                print(f"ERROR {chart_dir}/{name} is not in {grafana_dir}")
                failed = True
            elif grafana[name].read_bytes() != chart[name].read_bytes():
                print(f"ERROR {chart_dir}/{name} differs from {grafana_dir}/{name} (copy it again)")
                failed = True
        print(f"dashboards: {len(grafana)} in {grafana_dir}, {len(chart)} in the chart")
    else:
        print(f"dashboards: {grafana_dir} is empty; {len(chart)} in the chart ({', '.join(chart)})")
    return 1 if failed else 0


def cmd_schema(values_file, schema_file):
    values = yaml.safe_load(pathlib.Path(values_file).read_text())
    schema = json.loads(pathlib.Path(schema_file).read_text())
    problems = []
    count = 0

    def walk(value, node, path):
        nonlocal count
        count += 1
        if "description" not in node:
            problems.append(f"{path}: no description")
        if "type" not in node and "enum" not in node:
            problems.append(f"{path}: no type")
        if isinstance(value, dict) and node.get("properties") is not None:
            if node.get("additionalProperties", True) is not False:
                problems.append(f"{path}: additionalProperties is not false")
            for key, sub in value.items():
                if key not in node["properties"]:
                    problems.append(f"{path}.{key}: not in the schema")
                else:
                    walk(sub, node["properties"][key], f"{path}.{key}")
            for key in node["properties"]:
                if key not in value and key != "global":
                    problems.append(f"{path}.{key}: in the schema, not in values.yaml")

    walk(values, dict(schema, description=schema.get("title")), "values")
    try:
        jsonschema.Draft7Validator.check_schema(schema)
        jsonschema.Draft7Validator(schema).validate(values)
    except jsonschema.exceptions.ValidationError as e:
        problems.append(f"values.yaml does not fit the schema: {e.message}")
    except jsonschema.exceptions.SchemaError as e:
        problems.append(f"not a draft-07 schema: {e.message}")
    for p in problems:
        print(f"ERROR {p}")
    print(f"schema: {count} values described, {len(problems)} problems")
    return 1 if problems else 0


TABLE_BEGIN = "<!-- values-table:begin -->"
TABLE_END = "<!-- values-table:end -->"


def values_table(values, schema):
    """The Markdown table of every value: one row per leaf of the schema (an object without properties,
    such as resources, is one row), after a row for each group of values."""
    rows = ["| value | type | default | what it does |", "|---|---|---|---|"]

    def cell(text):
        return str(text).replace("|", "\\|").replace("\n", " ")

    def default(value):
        text = json.dumps(value, separators=(", ", ": "))
        return f"`{text}`" if len(text) <= 40 else "see values.yaml"

    def walk(value, node, path):
        props = node.get("properties")
        if props:
            if path:
                # A group's own row names what its values below are about.
                rows.append(f"| **`{path}`** | object | | {cell(node.get('description', ''))} |")
            for key, sub in props.items():
                if key == "global":
                    continue
                walk(value.get(key) if isinstance(value, dict) else None, sub, f"{path}.{key}" if path else key)
            return
        kind = node.get("type", "")
        kind = " or ".join(kind) if isinstance(kind, list) else kind
        text = node.get("description", "")
        enum = node.get("enum") or node.get("items", {}).get("enum")
        if enum and not all(str(e) in text for e in enum):
            text += " One of: " + ", ".join(f"`{e}`" for e in enum) + "."
        rows.append(f"| `{path}` | {cell(kind)} | {cell(default(value))} | {cell(text)} |")

    walk(values, schema, "")
    return "\n".join(rows) + "\n"


def cmd_values_table(args):
    write = args[:1] == ["--write"]
    if write:
        args = args[1:]
    if len(args) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    values = yaml.safe_load(pathlib.Path(args[0]).read_text())
    schema = json.loads(pathlib.Path(args[1]).read_text())
    table = values_table(values, schema)
    count = sum(1 for line in table.splitlines() if line.startswith("| `"))
    failed = False
    for name in args[2:]:
        path = pathlib.Path(name)
        text = path.read_text()
        begin, end = text.find(TABLE_BEGIN), text.find(TABLE_END)
        if begin < 0 or end < begin:
            print(f"ERROR {name}: no {TABLE_BEGIN} ... {TABLE_END} lines")
            failed = True
            continue
        start = begin + len(TABLE_BEGIN) + 1
        if text[start:end] == table:
            print(f"values-table: {name} is up to date ({count} values)")
        elif write:
            path.write_text(text[:start] + table + text[end:])
            print(f"values-table: wrote {name} ({count} values)")
        else:
            print(f"ERROR {name}: the values table is stale: run charts/tools/values-table.sh")
            failed = True
    return 1 if failed else 0


def main(argv):
    commands = {
        "crds": (cmd_crds, 1),
        "flags": (cmd_flags, 2),
        "dashboards": (cmd_dashboards, 2),
        "schema": (cmd_schema, 2),
    }
    if len(argv) >= 3 and argv[0] == "image":
        return cmd_image(argv[1], argv[2:])
    if argv[:1] == ["values-table"]:
        return cmd_values_table(argv[1:])
    if not argv or argv[0] not in commands or len(argv) - 1 != commands[argv[0]][1]:
        print(__doc__, file=sys.stderr)
        return 2
    func, _ = commands[argv[0]]
    return func(*argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
