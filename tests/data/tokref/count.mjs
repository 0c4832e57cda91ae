// Reference token counts for tests/data/token_corpus.jsonl, computed offline with published
// tokenizers (pinned in package.json): js-tiktoken's o200k_base (gpt-4o, gpt-4.1, gpt-5, o-series)
// and cl100k_base (gpt-4, gpt-3.5-turbo), and @anthropic-ai/tokenizer (the Claude tokenizer
// Anthropic published; Anthropic says it is not exact for Claude 3 and later).
//
// Chat framing: OpenAI's documented count for chat models — 3 tokens per message, plus the
// role, plus 1 for a name, plus 3 priming the reply. For Claude the same text is framed as
// "\n\nHuman: " / "\n\nAssistant: " turns (its legacy prompt format), the system prompt first.
//
//   cd tests/data/tokref && npm ci && node count.mjs > ../token_counts.json
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Tiktoken } from 'js-tiktoken/lite';
import o200k from 'js-tiktoken/ranks/o200k_base';
import cl100k from 'js-tiktoken/ranks/cl100k_base';
import { countTokens } from '@anthropic-ai/tokenizer';

const here = path.dirname(fileURLToPath(import.meta.url));
const lines = readFileSync(path.join(here, '..', 'token_corpus.jsonl'), 'utf8').trim().split('\n');
const encs = { o200k: new Tiktoken(o200k), cl100k: new Tiktoken(cl100k) };

function openaiCount(enc, messages) {
  let n = 3;
  for (const m of messages) {
    n += 3 + enc.encode(m.role, [], []).length + enc.encode(m.content, [], []).length;
    if (m.name) n += 1 + enc.encode(m.name, [], []).length;
  }
  return n;
}

function claudeCount(messages) {
  let n = countTokens('\n\nAssistant:');
  for (const m of messages) {
    const prefix = m.role === 'system' ? '' : m.role === 'assistant' ? '\n\nAssistant: ' : '\n\nHuman: ';
    n += countTokens(prefix + m.content);
  }
  return n;
}

const out = {};
for (const line of lines) {
  const it = JSON.parse(line);
  out[it.id] = {
    o200k: openaiCount(encs.o200k, it.messages),
    cl100k: openaiCount(encs.cl100k, it.messages),
    claude: claudeCount(it.messages),
  };
}
process.stdout.write(JSON.stringify(out, null, 0).replace(/},"/g, '},\n"') + '\n');
