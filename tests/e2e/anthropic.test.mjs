// The official @anthropic-ai/sdk (pinned) against slogate's POST /v1/messages, served by an
// Anthropic deployment and by an OpenAI-compatible one; and the openai SDK against an Anthropic
// deployment. slogate mock plays both providers (it speaks both wire formats).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import Anthropic from '@anthropic-ai/sdk';

import { startBothApis } from './helpers.mjs';

const T = { timeout: 15000 };

describe('Anthropic and OpenAI SDKs across wire formats', () => {
  let mock;
  let gw;
  let anthropic;
  let openai;
  let close;

  before(async () => {
    ({ mock, gw, anthropic, openai, close } = await startBothApis());
  });

  after(async () => {
    if (close) assert.equal(await close(), 0, 'gateway exit code after SIGTERM');
  });

  for (const model of ['app/claude', 'app/gpt']) {
    test(`anthropic messages.create via ${model}`, T, async () => {
      const { data, response } = await anthropic.messages.create({
        model, max_tokens: 12, system: 'Be brief.',
        messages: [{ role: 'user', content: 'Say hello' }],
      }).withResponse();
      assert.equal(data.type, 'message');
      assert.equal(data.role, 'assistant');
      assert.match(data.content[0].text, /^Mock answer from both/);
      assert.equal(data.stop_reason, 'max_tokens');
      assert.equal(data.usage.output_tokens, 12);
      assert.ok(data.usage.input_tokens > 0, 'input tokens');
      assert.ok(Number(response.headers.get('x-slogate-cost-usd')) > 0, 'cost header');
      const last = await mock.last();
      assert.equal(last.path, model === 'app/claude' ? '/v1/messages' : '/v1/chat/completions');
    });

    test(`anthropic messages.stream via ${model}`, T, async () => {
      const stream = anthropic.messages.stream({
        model, max_tokens: 8, messages: [{ role: 'user', content: 'Stream please' }],
      });
      let text = '';
      stream.on('text', (t) => { text += t; });
      const msg = await stream.finalMessage();
      assert.match(text, /^Mock answer from both/);
      assert.equal(msg.content[0].text, text);
      assert.equal(msg.stop_reason, 'max_tokens');
      assert.equal(msg.usage.output_tokens, 8);
      // The same prompt, not streamed, gives the same text.
      const whole = await anthropic.messages.create({
        model, max_tokens: 8, messages: [{ role: 'user', content: 'Stream please' }],
      });
      assert.equal(whole.content[0].text, text);
    });
  }

  test('a deployment that reports no usage: both SDKs see the estimate the gateway records', T,
    async () => {
      // The Anthropic SDK needs usage.input_tokens and output_tokens (ints): a Messages client
      // gets the gateway's estimate, never zeros, and OpenAI clients get the same numbers.
      await mock.faults({ no_usage: true });
      try {
        const messages = [{ role: 'user', content: 'Count my tokens please' }];
        const whole = await anthropic.messages.create({ model: 'app/gpt', max_tokens: 8, messages });
        assert.ok(whole.usage.input_tokens > 0, `input estimated: ${JSON.stringify(whole.usage)}`);
        assert.ok(whole.usage.output_tokens >= 8, 'output estimated from the text');
        const msg = await anthropic.messages.stream({ model: 'app/gpt', max_tokens: 8, messages })
          .finalMessage();
        assert.equal(msg.usage.input_tokens, whole.usage.input_tokens, 'the same input estimate');
        assert.equal(msg.usage.output_tokens, 8, 'one token a chunk with text');
        const res = await openai.chat.completions.create({ model: 'app/gpt', max_tokens: 8,
          messages });
        assert.equal(res.usage.prompt_tokens, whole.usage.input_tokens, 'OpenAI answer: same input');
        assert.equal(res.usage.total_tokens, res.usage.prompt_tokens + res.usage.completion_tokens);
        const stream = await openai.chat.completions.create({ model: 'app/gpt', max_tokens: 8,
          messages, stream: true, stream_options: { include_usage: true } });
        const chunks = [];
        for await (const chunk of stream) chunks.push(chunk);
        const last = chunks.at(-1);
        assert.deepEqual(last.choices, [], 'the usage chunk the client asked for');
        assert.equal(last.id, chunks[0].id);
        assert.equal(last.usage.prompt_tokens, whole.usage.input_tokens);
        assert.equal(last.usage.completion_tokens, 10, 'role, 8 tokens and finish: 10 chunks');
      } finally {
        await mock.clearFaults();
      }
    });

  test('anthropic SDK: wrong key is an AuthenticationError, unknown model a NotFoundError', T,
    async () => {
      const bad = new Anthropic({ apiKey: 'wrong', baseURL: `http://127.0.0.1:${gw.port}`,
        maxRetries: 0 });
      await assert.rejects(
        bad.messages.create({ model: 'app/claude', max_tokens: 5,
          messages: [{ role: 'user', content: 'x' }] }),
        (e) => e instanceof Anthropic.AuthenticationError && e.status === 401);
      await assert.rejects(
        anthropic.messages.create({ model: 'nope', max_tokens: 5,
          messages: [{ role: 'user', content: 'x' }] }),
        (e) => e instanceof Anthropic.NotFoundError && e.status === 404);
    });

  test('anthropic SDK: request ids, countTokens and an error\'s requestID', T, async () => {
    // The SDK reads Anthropic's request-id header into message._request_id and
    // APIError.requestID; support asks for it. countTokens is the gateway's input estimate, the
    // same number a translated stream's message_start carries.
    const messages = [{ role: 'user', content: 'How many tokens is this?' }];
    for (const model of ['app/claude', 'app/gpt']) {
      const { data, response } = await anthropic.messages.create({ model, max_tokens: 4,
        messages }).withResponse();
      assert.match(data._request_id, /^[0-9a-f]{32}$/, `${model}: _request_id`);
      assert.equal(data._request_id, response.headers.get('x-request-id'));
      const counted = await anthropic.messages.countTokens({ model, messages });
      assert.ok(counted.input_tokens > 0, `${model}: ${JSON.stringify(counted)}`);
      const stream = anthropic.messages.stream({ model: 'app/gpt', max_tokens: 4, messages });
      let start = null;
      // (read at once: the SDK's snapshot is this object, message_delta's usage overwrites it)
      stream.on('streamEvent', (e) => {
        if (e.type === 'message_start') start = e.message.usage.input_tokens;
      });
      await stream.finalMessage();
      assert.equal(counted.input_tokens, start, `${model}: the same estimate`);
    }
    await assert.rejects(
      anthropic.messages.create({ model: 'app/gpt', max_tokens: 4, messages: [] }),
      (e) => e instanceof Anthropic.BadRequestError && /^[0-9a-f]{32}$/.test(e.requestID));
    await assert.rejects(anthropic.messages.countTokens({ model: 'nope', messages }),
      (e) => e instanceof Anthropic.NotFoundError && e.error?.error?.type === 'not_found_error');
  });

  test('openai SDK against an Anthropic deployment (non-streaming and streaming)', T, async () => {
    const res = await openai.chat.completions.create({
      model: 'app/claude', max_tokens: 10,
      messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }],
    });
    assert.equal(res.object, 'chat.completion');
    assert.match(res.choices[0].message.content, /^Mock answer from both/);
    assert.equal(res.choices[0].finish_reason, 'length');
    assert.equal(res.usage.completion_tokens, 10);
    const stream = await openai.chat.completions.create({
      model: 'app/claude', max_tokens: 10, stream: true, stream_options: { include_usage: true },
      messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }],
    });
    let text = '';
    let usage = null;
    let finish = null;
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      const c = chunk.choices[0];
      if (c?.delta?.content) text += c.delta.content;
      if (c?.finish_reason) finish = c.finish_reason;
    }
    assert.equal(text, res.choices[0].message.content);
    assert.equal(finish, 'length');
    assert.equal(usage.completion_tokens, 10);
  });

  test('openai SDK tool-call round trip through an Anthropic deployment', T, async () => {
    const tools = [{ type: 'function', function: { name: 'get_weather', description: 'Weather',
      parameters: { type: 'object', properties: { city: { type: 'string' } },
        required: ['city'] } } }];
    const res = await openai.chat.completions.create({
      model: 'app/claude', max_tokens: 20, tools,
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'toolu_01', type: 'function',
          function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
        { role: 'tool', tool_call_id: 'toolu_01', content: '18C' },
      ],
    });
    assert.equal(res.object, 'chat.completion');
    const sent = (await mock.last()).body;
    assert.deepEqual(sent.tools, [{ name: 'get_weather', description: 'Weather',
      input_schema: tools[0].function.parameters }]);
    assert.deepEqual(sent.messages[1].content, [{ type: 'tool_use', id: 'toolu_01',
      name: 'get_weather', input: { city: 'Paris' } }]);
    assert.deepEqual(sent.messages[2], { role: 'user', content: [{ type: 'tool_result',
      tool_use_id: 'toolu_01', content: '18C' }] });
  });
});
