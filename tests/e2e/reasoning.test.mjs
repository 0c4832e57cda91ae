// Reasoning through the official SDKs (docs/api.md, "Reasoning"): the openai SDK reads
// reasoning_content and thinking_blocks from an Anthropic deployment, whole and streamed; the
// @anthropic-ai/sdk reads thinking blocks an OpenAI-format deployment's reasoning_content
// became. slogate mock plays both providers and answers with reasoning when asked.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { startBothApis } from './helpers.mjs';

const T = { timeout: 15000 };

describe('reasoning across wire formats', () => {
  let gw;
  let anthropic;
  let openai;
  let close;

  before(async () => {
    ({ gw, anthropic, openai, close } = await startBothApis());
  });

  after(async () => {
    if (close) assert.equal(await close(), 0, 'gateway exit code after SIGTERM');
  });

  test('openai SDK: reasoning_effort at an Anthropic deployment', T, async () => {
    const c = await openai.chat.completions.create({
      model: 'app/claude', reasoning_effort: 'low',
      messages: [{ role: 'user', content: 'Think first' }],
    });
    const msg = c.choices[0].message;
    assert.match(msg.reasoning_content, /^Thinking it over for both/);
    assert.equal(msg.thinking_blocks[0].type, 'thinking');
    assert.match(msg.thinking_blocks[0].signature, /^mocksig-/);
    assert.match(msg.content, /^Mock answer from both/);
    assert.equal(c.usage.completion_tokens, 30, 'thinking counted in the output');
    assert.ok(c.usage.completion_tokens_details.reasoning_tokens > 0, 'reasoning_tokens');
  });

  test('openai SDK: reasoning_content streamed from an Anthropic deployment', T, async () => {
    const stream = await openai.chat.completions.create({
      model: 'app/claude', reasoning_effort: 'low', stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'Think first' }],
    });
    let reasoning = '';
    let text = '';
    let usage = null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      const d = chunk.choices[0]?.delta;
      if (d?.reasoning_content) reasoning += d.reasoning_content;
      if (d?.content) text += d.content;
    }
    assert.match(reasoning, /^Thinking it over for both/);
    assert.match(text, /^Mock answer from both/);
    assert.equal(usage.completion_tokens, 30);
  });

  test('anthropic SDK: thinking through an OpenAI-format deployment', T, async () => {
    const msg = await anthropic.messages.create({
      model: 'app/gpt', max_tokens: 4096, thinking: { type: 'enabled', budget_tokens: 2048 },
      messages: [{ role: 'user', content: 'Think first' }],
    });
    assert.deepEqual(msg.content.map((b) => b.type), ['thinking', 'text']);
    assert.match(msg.content[0].thinking, /^Thinking it over for both/);
    assert.equal(msg.usage.output_tokens, 30);

    const stream = anthropic.messages.stream({
      model: 'app/gpt', max_tokens: 4096, thinking: { type: 'enabled', budget_tokens: 2048 },
      messages: [{ role: 'user', content: 'Think first' }],
    });
    let thinking = '';
    stream.on('thinking', (delta) => { thinking += delta; });
    const final = await stream.finalMessage();
    assert.deepEqual(final.content.map((b) => b.type), ['thinking', 'text']);
    assert.equal(final.content[0].thinking, thinking);
    assert.equal(final.content[0].thinking, msg.content[0].thinking, 'same as whole');
    assert.equal(final.usage.output_tokens, 30);
  });
});
