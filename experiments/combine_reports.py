#!/usr/bin/env python3
"""Combines ortho_eval report.json files (eval/report.h) into one table: OUT/grid.md and OUT/grid.html.

  combine_reports.py --out DIR [--tokens-per-run N] NAME=PATH/report.json ...

One row per run, in the order given. Every number is copied from the reports (no re-computation):
perplexity and bits per byte; first-token attention (argmax rate, mass on key 0, chance level), query 0
excluded; hidden-state kurtosis and max |activation|, first token vs the other tokens (means over layers);
and the penalty ppl(quantised) − ppl(full precision) of every quantisation scheme in the reports.
grid.html is self-contained (inline CSS, no scripts, no external files).
"""
import argparse
import html
import json
import math
import os
import sys


def num(x, fmt):
    """x formatted with fmt, or "n/a" for null/NaN (report.json writes non-finite numbers as null)."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return fmt.format(x)


def pct(x):
    return "n/a" if x is None else num(100.0 * x, "{:.1f}") + "%"


def load(spec):
    name, sep, path = spec.partition("=")
    if not sep:
        sys.exit(f"combine_reports: expected NAME=PATH, got {spec!r}")
    with open(path) as f:
        return name, path, json.load(f)


def describe(meta):
    """(attention, optimizer, norm) from the report's meta, as ortho_eval wrote them."""
    model, opt = meta.get("model", {}), meta.get("optimizer", {})
    return model.get("attention", "?"), opt.get("kind", "?"), model.get("norm", "?")


def tables(runs):
    """The three tables as (title, note, header, rows); rows are lists of strings."""
    setup = ["run", "attention", "optimizer", "norm"]
    schemes = []
    for _, _, r in runs:
        for q in r.get("quant", []):
            if q["scheme"] not in schemes:
                schemes.append(q["scheme"])

    t1, t2, t3 = [], [], []
    for name, _, r in runs:
        base = [name, *describe(r.get("meta", {}))]
        t1.append(base + [num(r.get("ppl"), "{:.2f}"), num(r.get("bits_per_byte"), "{:.3f}"),
                          pct(r.get("first_argmax_overall")), pct(r.get("first_mass_overall")), pct(r.get("chance"))])
        mf, mr = r.get("maxabs_first_mean"), r.get("maxabs_rest_mean")
        ratio = mf / mr if mf is not None and mr else None
        t2.append(base + [num(r.get("kurtosis_first_mean"), "{:.2f}"), num(r.get("kurtosis_rest_mean"), "{:.2f}"),
                          num(mf, "{:.2f}"), num(mr, "{:.2f}"), num(ratio, "{:.2f}")])
        pen = {q["scheme"]: q for q in r.get("quant", [])}
        t3.append(base + [num(r.get("ppl"), "{:.2f}")] +
                  [num(pen[s]["penalty"], "{:+.2f}") if s in pen else "—" for s in schemes])

    chance_note = ("Query 0 excluded; chance = (H_T − 1)/(T − 1), the share of uniform causal attention "
                   "on key 0.")
    return [
        ("Perplexity and first-token attention", chance_note,
         setup + ["perplexity", "bits per byte", "first-token argmax", "first-token mass", "chance"], t1),
        ("Hidden states",
         "Each block's output, mean over layers and windows: kurtosis across channels (Pearson, Gaussian = 3) "
         "and max |activation|, first token vs the other tokens.",
         setup + ["kurtosis first", "kurtosis rest", "max |act| first", "max |act| rest", "max first / rest"], t2),
        ("Quantisation penalties",
         "Penalty = ppl(quantised) − ppl(full precision), in perplexity points; linear layers only.",
         setup + ["ppl full"] + [f"{s} penalty" for s in schemes], t3),
    ]


def context_lines(runs, tokens_per_run):
    """Facts shared by the runs (or a warning where they differ)."""
    def common(key_fn, label):
        vals = {json.dumps(key_fn(r), sort_keys=True) for _, _, r in runs}
        if len(vals) == 1:
            return f"{label}: {json.loads(vals.pop())}"
        return f"{label}: DIFFERS between runs — " + ", ".join(f"{n}: {key_fn(r)}" for n, _, r in runs)

    lines = [
        common(lambda r: {k: v for k, v in r.get("meta", {}).get("model", {}).items()
                          if k not in ("attention", "norm")}, "model"),
        common(lambda r: r.get("meta", {}).get("step"), "training steps"),
        common(lambda r: r.get("meta", {}).get("optimizer", {}).get("seed"), "seed"),
        common(lambda r: r.get("meta", {}).get("data_path"), "held-out set"),
        common(lambda r: [r.get("tokens"), r.get("sequences")], "scored tokens, windows"),
    ]
    if tokens_per_run:
        lines.insert(2, f"training tokens per run: {tokens_per_run:,}")
    lines.append("reports: " + ", ".join(f"{n}: {p}" for n, p, _ in runs))
    return lines


def md_cell(s):
    return str(s).replace("|", "\\|")


def to_markdown(runs, tokens_per_run):
    o = ["# The 2×2 grid at CPU scale", ""]
    o += [f"- {md_cell(l)}" for l in context_lines(runs, tokens_per_run)] + [""]
    for title, note, header, rows in tables(runs):
        o += [f"## {title}", "", note, ""]
        o.append("| " + " | ".join(md_cell(h) for h in header) + " |")
        o.append("|" + "|".join("---" if i < 4 else "---:" for i in range(len(header))) + "|")
        o += ["| " + " | ".join(md_cell(c) for c in row) + " |" for row in rows]
        o.append("")
    return "\n".join(o)


CSS = """
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; margin: 24px; color: #222; max-width: 1180px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 4px 9px; }
th { background: #f0f0f0; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
p.note, ul.context { color: #555; font-size: 0.92em; }
"""


def to_html(runs, tokens_per_run):
    e = html.escape
    o = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
         "<title>The 2×2 grid at CPU scale</title>", f"<style>{CSS}</style></head><body>",
         "<h1>The 2×2 grid at CPU scale</h1>", '<ul class="context">']
    o += [f"<li>{e(l)}</li>" for l in context_lines(runs, tokens_per_run)]
    o.append("</ul>")
    for title, note, header, rows in tables(runs):
        o += [f"<h2>{e(title)}</h2>", f'<p class="note">{e(note)}</p>', "<table>",
              "<thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr></thead>", "<tbody>"]
        for row in rows:
            cells = (("<td class=\"n\">" if i >= 4 else "<td>") + e(c) + "</td>" for i, c in enumerate(row))
            o.append("<tr>" + "".join(cells) + "</tr>")
        o += ["</tbody>", "</table>"]
    o.append("</body></html>")
    return "\n".join(o) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="directory for grid.md and grid.html")
    ap.add_argument("--tokens-per-run", type=int, default=0, help="training tokens per run (printed)")
    ap.add_argument("reports", nargs="+", metavar="NAME=REPORT_JSON")
    args = ap.parse_args()
    runs = [load(s) for s in args.reports]
    os.makedirs(args.out, exist_ok=True)
    md = to_markdown(runs, args.tokens_per_run)
    with open(os.path.join(args.out, "grid.md"), "w") as f:
        f.write(md)
    with open(os.path.join(args.out, "grid.html"), "w") as f:
        f.write(to_html(runs, args.tokens_per_run))
    print(md)


if __name__ == "__main__":
    main()
