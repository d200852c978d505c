#!/usr/bin/env python3
"""Token ids of runtime/tokenizer (through apc-tokenize) against Hugging Face `tokenizers`.

On the real Llama 3 tokenizer.json ($APC_LLAMA3_TOKENIZER, else ../shared/data/llama3/
next to this checkout) and a generated corpus (news-like text, code, whitespace runs with
\\r\\n and tabs, contractions in any case, numbers of many lengths, accents and combining
marks, scripts, CJK, emoji and ZWJ sequences, a sweep of code points, special-token strings inside text, invalid
UTF-8, very long words, random mixtures). Every entry must give identical ids, decode as
HF decodes, and decode back to the text. Invalid UTF-8 is compared as documented in
docs/tokenizer.md: HF is given bytes.decode("utf-8", errors="replace").

Variants of the same file: as it is (no BOS: its post-processor is ByteLevel), with the
TemplateProcessing that adds <|begin_of_text|> (as the current Hugging Face file has), with
ignore_merges off, and with merges spelled as pairs (tokenizers 0.19 cannot read pairs, so
that one is checked against our ids for the "a b" spelling).

A missing tokenizer file or a missing `tokenizers` module is a FAIL that says so.
"""
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
import unicodedata

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from e2e_common import Report, bin_path  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(HERE))


def find_tokenizer():
    env = os.environ.get("APC_LLAMA3_TOKENIZER")
    if env:
        return env
    return os.path.join(os.path.dirname(ROOT), "shared", "data", "llama3", "tokenizer.json")


# ------------------------------------------------------------------------------ corpus

WORDS = ("the of and to in a is that for on with as was by he it at from his an were are "
         "which this be or has had not but said government minister police president "
         "people year years new first last million percent company market report city "
         "according told Monday Tuesday officials London Washington children school "
         "hospital court football season players election Britain American Chinese "
         "economy billion investigation statement spokesman weekend attack").split()

CODE = [
    "def f(x, y=3):\n    return x ** 2 + y  # square\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}\r\n",
    "#include <stdio.h>\nint main(void) { printf(\"%d\\n\", 42); return 0; }\n",
    "if __name__ == '__main__':\n        main()\n\n\n",
    "const x = {a: 1, 'b': [2, 3], \"c\": null};\t// JS\n",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;\n",
    "    \t  x = y->next;   \r\n\r\n  }\n",
    "<div class=\"main\"><p>Hello &amp; welcome</p></div>\n",
    "$ ls -la /usr/lib | grep 'pcre2' && echo \"ok\" || exit 1\n",
    "fn main() -> Result<(), Box<dyn Error>> { let v: Vec<u8> = vec![]; Ok(()) }",
]

WHITESPACE = [" ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2009", "\x0b", "\x0c",
              "\u0085", "\u2028", "\u202f", "\u200b", "\ufeff", "\u1680", "\u180e"]

CONTRACTIONS = ["I'M", "you'Re", "DON'T", "it'S", "we'LL", "they'VE", "he'D", "I'm", "You're",
                "can't", "won'T", "'s", "'S", "'ll", "'Ll", "O'Neil", "rock'n'roll", "'ſ",
                "'K", "'\u212a", "y'all", "ma'am", "'re'", "' s", "''s", "it’s", "’re"]

SCRIPTS = ["café", "naïve", "résumé", "Zürich", "São Paulo", "Ångström", "e\u0301te\u0301",
           "Tiếng Việt có dấu", "Ελληνικά γράμματα", "Русский текст, ёж", "العربية نص",
           "עברית", "हिन्दी भाषा", "ภาษาไทย", "ქართული", "Հայերեն", "ꯃꯤꯇꯩ", "ᚠᛇᚻ",
           "中文文本测试，包括标点。", "日本語のテキスト、カタカナ", "한국어 텍스트입니다",
           "𠀀𠀁 𪚥", "ﬁﬂ ligatures", "Ⅻ Ⅳ ½ ¾ ² ³ ₁₂", "١٢٣٤٥ ۱۲۳", "१२३", "๑๒๓",
           "𝐀𝐁𝐂 𝔘𝔫𝔦", "İstanbul ıi", "ß ẞ straße", "Ǆ ǅ ǆ"]

EMOJI = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇫🇷🇩🇪", "❤️", "🧑🏿‍💻", "👁‍🗨", "☺︎", "#️⃣",
         "🫠", "🦀🐍", "✈️", "©️®️™️"]

SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>",
            "<|end_header_id|>", "<|reserved_special_token_5|>", "<|reserved_special_token_250|>",
            "<|begin_of_text", "<|begin_of_text|", "<<|eot_id|>>", "<|eot_id|><|eot_id|>",
            " <|eot_id|> ", "<|finetune_right_pad_id|>", "<|python_tag|>"]

INVALID = [b"\xff", b"\xfe\xfe", b"\xc0\xaf", b"\xe2\x82", b"\xed\xa0\x80", b"\xf0\x9f\x98",
           b"\xf4\x90\x80\x80", b"\x80\x80", b"\xc3", b"\xe0\x80\x80", b"\xf8\x88\x80\x80\x80"]


def number(rng):
    n = rng.randint(1, 30)
    s = str(rng.randint(1, 9)) + "".join(rng.choice("0123456789") for _ in range(n - 1))
    form = rng.randint(0, 5)
    if form == 1:
        s = "{:,}".format(int(s))
    elif form == 2:
        s = s[: max(1, len(s) // 2)] + "." + s[len(s) // 2:]
    elif form == 3:
        s = "-" + s + "%"
    elif form == 4:
        s = "$" + s
    return s


def news(rng):
    out = []
    for _ in range(rng.randint(1, 6)):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 25))]
        words[0] = words[0].capitalize()
        if rng.random() < 0.4:
            words.insert(rng.randint(0, len(words)), number(rng))
        if rng.random() < 0.3:
            words.insert(rng.randint(0, len(words)), '"%s"' % rng.choice(WORDS))
        if rng.random() < 0.3:
            words.insert(rng.randint(0, len(words)), rng.choice(CONTRACTIONS))
        out.append(" ".join(words) + rng.choice([".", ".", "!", "?", "...", ":", " --"]))
    return rng.choice([" ", "  ", "\n", "\n\n", " \n"]).join(out)


def mixture(rng):
    pools = [WORDS, CONTRACTIONS, SCRIPTS, EMOJI, WHITESPACE, SPECIALS,
             list("!@#$%^&*()_+-=[]{};:'\",.<>/?\\|`~"), [number(rng) for _ in range(5)]]
    return "".join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(1, 40)))


def random_chars(rng):
    """Characters from the whole BMP and beyond (no surrogates): classes, marks, symbols."""
    out = []
    for _ in range(rng.randint(1, 30)):
        r = rng.random()
        if r < 0.3:
            cp = rng.randint(0x20, 0x7e)
        elif r < 0.6:
            cp = rng.randint(0xa0, 0x2fff)
        elif r < 0.8:
            cp = rng.randint(0x3000, 0xd7ff)
        elif r < 0.9:
            cp = rng.randint(0xe000, 0xfffd)
        else:
            cp = rng.randint(0x10000, 0x1faff)
        out.append(chr(cp))
    return "".join(out)


def corpus():
    """A list of bytes objects."""
    rng = random.Random(7)
    texts = []
    texts += [news(rng) for _ in range(800)]
    texts += CODE + [rng.choice(CODE) * rng.randint(2, 5) for _ in range(50)]
    texts += ["".join(rng.choice(WHITESPACE + ["a", "b", "1", ".", "\n"]) for _ in range(rng.randint(1, 30)))
              for _ in range(400)]
    texts += ["".join(rng.choice(WHITESPACE) for _ in range(rng.randint(1, 12))) for _ in range(200)]
    texts += CONTRACTIONS + [" ".join(rng.choice(CONTRACTIONS) for _ in range(5)) for _ in range(100)]
    texts += [number(rng) for _ in range(300)] + ["".join(str(i) for i in range(n)) for n in range(1, 40)]
    texts += SCRIPTS + [" ".join(rng.choice(SCRIPTS) for _ in range(4)) for _ in range(100)]
    texts += EMOJI + ["".join(rng.choice(EMOJI) for _ in range(6)) for _ in range(100)]
    texts += SPECIALS + ["Hello" + rng.choice(SPECIALS) + news(rng) for _ in range(100)]
    texts += [mixture(rng) for _ in range(800)]
    texts += [random_chars(rng) for _ in range(800)]
    texts += ["a" * 5000, "Supercalifragilistic" * 300, "9" * 10000, " " * 3000 + "x",
              "\n" * 2000, "😀" * 1000, "中" * 4000, "http://example.com/" + "a/b?c=d&" * 400,
              "I'M" * 500, "-" * 4000, "é" * 3000]
    texts += [""]
    data = [t.encode("utf-8") for t in texts]
    for _ in range(300):
        base = news(rng).encode("utf-8")
        cut = rng.randint(0, len(base))
        data.append(base[:cut] + rng.choice(INVALID) + base[cut:])
    data += INVALID
    # Code points: every one whose category is separator, control or format (where regex
    # engines' \s differ: U+180E), and every 97th code point, each as space, letter, number
    # and contraction neighbour.
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        ch = chr(cp)
        if unicodedata.category(ch) in ("Zs", "Zl", "Zp", "Cc", "Cf") or cp % 97 == 0:
            data.append(("%s%s a%s1%s's %s'S%s\n" % ((ch,) * 6)).encode("utf-8"))
    data.append("é".encode("utf-8")[:1] + "中".encode("utf-8")[:2] + b"ok")
    return data


# ------------------------------------------------------------------------------ checks


def run_ours(tool, tokenizer_path, records_path, extra):
    p = subprocess.run([tool, tokenizer_path, records_path] + extra, capture_output=True, timeout=600)
    if p.returncode != 0:
        raise RuntimeError("apc-tokenize failed (%d): %s" % (p.returncode, p.stderr.decode(errors="replace")))
    # One JSON object a line; split on b"\n" only (U+2028 and U+0085 may appear raw).
    return [json.loads(line) for line in p.stdout.split(b"\n") if line]


def compare(report, name, hf, tool, tok_path, records_path, data, add_special, round_trip):
    extra = [] if add_special else ["--no-special"]
    ours = run_ours(tool, tok_path, records_path, extra)
    if not report.check("%s: one result per entry" % name, len(ours) == len(data),
                        "%d results for %d entries" % (len(ours), len(data))):
        return None
    mismatch, decode_mismatch, trip_mismatch = [], [], []
    for raw, got in zip(data, ours):
        text = raw.decode("utf-8", errors="replace")
        want = hf.encode(text, add_special_tokens=add_special).ids
        if got["ids"] != want:
            mismatch.append((text, got["ids"], want))
            continue
        if got["decoded"] != hf.decode(want, skip_special_tokens=False):
            decode_mismatch.append(text)
        if round_trip and got["decoded"] != text:
            trip_mismatch.append(text)
    detail = "%d entries, %d mismatches" % (len(data), len(mismatch))
    if mismatch:
        text, got, want = mismatch[0]
        detail += "; first: %r: ours %s, hf %s" % (text[:80], got[:20], want[:20])
    report.check("%s: ids identical to HF" % name, not mismatch, detail)
    report.check("%s: decode identical to HF" % name, not decode_mismatch,
                 "%d differ%s" % (len(decode_mismatch), "; first %r" % decode_mismatch[0][:80] if decode_mismatch else ""))
    if round_trip:
        report.check("%s: decode(encode(x)) == x" % name, not trip_mismatch,
                     "%d differ%s" % (len(trip_mismatch), "; first %r" % trip_mismatch[0][:80] if trip_mismatch else ""))
    return [r["ids"] for r in ours]


def main():
    start = time.time()
    report = Report()
    tok_path = find_tokenizer()
    if not os.path.isfile(tok_path):
        report.check("llama3 tokenizer present", False,
                     "%s not found: set APC_LLAMA3_TOKENIZER to a Llama 3 tokenizer.json (not run)" % tok_path)
        return report.summary(start)
    try:
        import tokenizers
    except ImportError as e:
        report.check("HF tokenizers importable", False, "%s (tools/setup.sh installs it in .venv; not run)" % e)
        return report.summary(start)
    tool = bin_path("apc-tokenize")
    if not report.check("apc-tokenize built", os.path.isfile(tool), tool):
        return report.summary(start)
    report.info("tokenizer %s, HF tokenizers %s" % (tok_path, tokenizers.__version__))

    data = corpus()
    report.info("corpus: %d entries, %d bytes" % (len(data), sum(len(d) for d in data)))
    original = json.load(open(tok_path, encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="apc_tok_") as tmp:
        records = os.path.join(tmp, "records.bin")
        with open(records, "wb") as f:
            for d in data:
                f.write(struct.pack("<I", len(d)))
                f.write(d)

        hf = tokenizers.Tokenizer.from_file(tok_path)
        base = compare(report, "llama3 as is", hf, tool, tok_path, records, data, True, True)

        # The current Hugging Face file: Sequence[ByteLevel, TemplateProcessing(BOS)].
        bos = dict(original)
        bos["post_processor"] = {"type": "Sequence", "processors": [
            original["post_processor"],
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                        {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                      {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                      {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [128000],
                                                      "tokens": ["<|begin_of_text|>"]}}}]}
        bos_path = os.path.join(tmp, "bos.json")
        json.dump(bos, open(bos_path, "w", encoding="utf-8"), ensure_ascii=False)
        hf_bos = tokenizers.Tokenizer.from_file(bos_path)
        compare(report, "llama3 with BOS template", hf_bos, tool, bos_path, records, data, True, False)
        compare(report, "llama3 with BOS template, add_special_tokens=False", hf_bos, tool, bos_path,
                records, data, False, True)

        no_ignore = dict(original)
        no_ignore["model"] = dict(original["model"], ignore_merges=False)
        ni_path = os.path.join(tmp, "no_ignore.json")
        json.dump(no_ignore, open(ni_path, "w", encoding="utf-8"), ensure_ascii=False)
        compare(report, "llama3 ignore_merges=false", tokenizers.Tokenizer.from_file(ni_path), tool,
                ni_path, records, data, True, True)

        pairs = dict(original)
        pairs["model"] = dict(original["model"], merges=[m.split(" ") for m in original["model"]["merges"]])
        pairs_path = os.path.join(tmp, "pairs.json")
        json.dump(pairs, open(pairs_path, "w", encoding="utf-8"), ensure_ascii=False)
        if base is not None:
            got = [r["ids"] for r in run_ours(tool, pairs_path, records, [])]
            report.check("merges as [a, b] pairs give the ids of \"a b\" strings", got == base,
                         "%d of %d differ" % (sum(a != b for a, b in zip(got, base)), len(base)))
    return report.summary(start)


if __name__ == "__main__":
    sys.exit(main())
