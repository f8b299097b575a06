// BERT WordPiece tokenisation in the page, read from the same tokenizer.json the Python side
// loads with the Rust `tokenizers` library (reference_system.predictors.Encoder), and doing
// what it does for a single text: BertNormalizer (clean text, pad CJK characters, strip
// accents, lowercase) -> BertPreTokenizer (split on whitespace and punctuation) -> WordPiece
// (greedy longest match, "##" continuations, [UNK] for a word it cannot split) -> [CLS] ... [SEP],
// truncated to maxLength tokens. Any other tokenizer.json shape is refused, not approximated.

// Rust's char::is_whitespace minus the control characters clean_text has already dropped.
const WHITESPACE = /[\t\n\r \u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/u;
const CONTROL = /\p{C}/u; // Cc, Cf, Cn, Co, Cs: unicode_categories' is_other()
const PUNCTUATION = /[!-/:-@[-`{-~]|\p{P}/u;
const MARK = /\p{Mn}/gu;

function isChinese(cp) {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b920 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

function expect(what, actual, wanted) {
  if (actual !== wanted) {
    throw new Error(`tokenizer.json: ${what} is ${JSON.stringify(actual)}, expected ${JSON.stringify(wanted)}`);
  }
}

export class WordPiece {
  constructor(tokenizerJson, maxLength) {
    const t = tokenizerJson;
    expect("normalizer.type", t.normalizer?.type, "BertNormalizer");
    expect("pre_tokenizer.type", t.pre_tokenizer?.type, "BertPreTokenizer");
    expect("model.type", t.model?.type, "WordPiece");
    expect("post_processor.type", t.post_processor?.type, "TemplateProcessing");
    if (!Number.isInteger(maxLength) || maxLength < 2) {
      throw new Error(`maxLength must be an integer >= 2, got ${maxLength}`);
    }
    const n = t.normalizer;
    this.cleanText = n.clean_text;
    this.chineseChars = n.handle_chinese_chars;
    this.lowercase = n.lowercase;
    this.stripAccents = n.strip_accents ?? n.lowercase; // null: follows lowercase, as in tokenizers
    this.vocab = new Map(Object.entries(t.model.vocab));
    this.prefix = t.model.continuing_subword_prefix;
    this.maxWordChars = t.model.max_input_chars_per_word;
    this.unk = this.id(t.model.unk_token);
    this.cls = this.id("[CLS]");
    this.sep = this.id("[SEP]");
    this.maxLength = maxLength;
  }

  id(token) {
    const id = this.vocab.get(token);
    if (id === undefined) throw new Error(`tokenizer.json: ${token} is not in the vocabulary`);
    return id;
  }

  normalize(text) {
    let out = "";
    for (const c of text) {
      const cp = c.codePointAt(0);
      if (this.cleanText) {
        if (cp === 0 || cp === 0xfffd || (CONTROL.test(c) && !"\t\n\r".includes(c))) continue;
        if (WHITESPACE.test(c)) {
          out += " ";
          continue;
        }
      }
      out += this.chineseChars && isChinese(cp) ? ` ${c} ` : c;
    }
    if (this.stripAccents) out = out.normalize("NFD").replace(MARK, "");
    if (this.lowercase) out = out.toLowerCase();
    return out;
  }

  words(text) {
    const words = [];
    let word = "";
    for (const c of text) {
      if (WHITESPACE.test(c)) {
        if (word) words.push(word);
        word = "";
      } else if (PUNCTUATION.test(c)) {
        if (word) words.push(word);
        words.push(c);
        word = "";
      } else {
        word += c;
      }
    }
    if (word) words.push(word);
    return words;
  }

  pieces(word, out) {
    const chars = Array.from(word);
    if (chars.length > this.maxWordChars) {
      out.push(this.unk);
      return;
    }
    const ids = [];
    for (let start = 0; start < chars.length; ) {
      let end = chars.length;
      let found;
      for (; end > start; end--) {
        const piece = (start > 0 ? this.prefix : "") + chars.slice(start, end).join("");
        found = this.vocab.get(piece);
        if (found !== undefined) break;
      }
      if (found === undefined) {
        out.push(this.unk);
        return;
      }
      ids.push(found);
      start = end;
    }
    out.push(...ids);
  }

  /** Token ids of one text: [CLS] pieces... [SEP], at most maxLength of them. */
  encode(text) {
    const ids = [];
    for (const word of this.words(this.normalize(text))) this.pieces(word, ids);
    ids.length = Math.min(ids.length, this.maxLength - 2);
    return [this.cls, ...ids, this.sep];
  }
}
