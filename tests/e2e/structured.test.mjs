// Structured output through slogate from an Anthropic deployment, as the official openai SDK's
// helpers use it: beta.chat.completions.parse() and .stream() with a json_schema response_format
// parse the message content. Anthropic has no response_format; slogate forces a json_tool_call
// tool whose input_schema is the schema and hands its input back as the content (docs/api.md).
// slogate mock answers a tool forced by name with an input that fits its schema (docs/mock.md).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { makeParseableResponseFormat } from 'openai/lib/parser';

import { startBothApis } from './helpers.mjs';

const T = { timeout: 15000 };
const TEXT = 'Grüße 😀'; // the mock's value for a string property

const responseFormat = {
  type: 'json_schema',
  json_schema: {
    name: 'city',
    strict: true,
    schema: {
      type: 'object',
      additionalProperties: false,
      required: ['name', 'population', 'capital', 'unit', 'districts'],
      properties: {
        name: { type: 'string' },
        population: { type: 'integer' },
        capital: { type: 'boolean' },
        unit: { type: 'string', enum: ['km2', 'mi2'] },
        districts: { type: 'array', items: { type: 'string' }, minItems: 1 },
      },
    },
  },
};
// The SDK's parse() JSON-parses a plain json_schema's content; its stream helper only parses a
// format made parseable, as zodResponseFormat() does (this parser checks what zod would).
const checked = makeParseableResponseFormat(responseFormat, (content) => {
  const v = JSON.parse(content);
  for (const k of responseFormat.json_schema.schema.required) {
    if (!(k in v)) throw new Error(`${k} is missing from ${content}`);
  }
  return { ...v, checked: true };
});
const expected = { name: TEXT, population: 1, capital: true, unit: 'km2', districts: [TEXT] };
const messages = [{ role: 'user', content: 'The largest city of France, as JSON.' }];

describe('structured output from an Anthropic deployment', () => {
  let openai;
  let mock;
  let close;

  before(async () => {
    ({ openai, mock, close } = await startBothApis());
  });

  after(async () => {
    if (close) assert.equal(await close(), 0, 'gateway exit code after SIGTERM');
  });

  test('beta.chat.completions.parse: the content is parsed by the SDK', T, async () => {
    const p = await openai.beta.chat.completions.parse({
      model: 'app/claude', max_tokens: 300, messages, response_format: checked,
    });
    assert.deepEqual(p.choices[0].message.parsed, { ...expected, checked: true });
    // A plain json_schema (no parser of its own): the SDK JSON-parses the content.
    const c = await openai.beta.chat.completions.parse({
      model: 'app/claude', max_tokens: 300, messages, response_format: responseFormat,
    });
    const choice = c.choices[0];
    assert.equal(choice.finish_reason, 'stop');
    assert.deepEqual(choice.message.parsed, expected);
    assert.deepEqual(JSON.parse(choice.message.content), expected);
    assert.deepEqual(choice.message.tool_calls ?? [], [], 'no tool call reaches the client');
    assert.ok(c.usage.prompt_tokens > 0 && c.usage.completion_tokens > 0, 'usage');
    const sent = (await mock.last()).body;
    assert.equal(sent.response_format, undefined, 'not sent to Anthropic');
    assert.deepEqual(sent.tool_choice,
      { type: 'tool', name: 'json_tool_call', disable_parallel_tool_use: true });
    assert.deepEqual(sent.tools.map((t) => t.input_schema), [responseFormat.json_schema.schema]);
  });

  test('beta.chat.completions.stream: content deltas, parsed when done', T, async () => {
    const stream = openai.beta.chat.completions.stream({
      model: 'app/claude', max_tokens: 300, messages, response_format: checked,
      stream_options: { include_usage: true },
    });
    let deltas = 0;
    let done = null;
    stream.on('content.delta', () => { deltas += 1; });
    stream.on('content.done', (e) => { done = e.parsed; });
    const final = await stream.finalChatCompletion();
    assert.ok(deltas > 1, `the JSON arrives in pieces (${deltas} deltas)`);
    assert.deepEqual(done, { ...expected, checked: true }, 'parsed by the format when done');
    assert.equal(final.choices[0].finish_reason, 'stop');
    assert.deepEqual(final.choices[0].message.parsed, { ...expected, checked: true });
    assert.deepEqual(final.choices[0].message.tool_calls ?? [], []);
    assert.ok(final.usage.completion_tokens > 0, 'usage');
  });

  test('json_object: an object as content', T, async () => {
    const c = await openai.chat.completions.create({
      model: 'app/claude', max_tokens: 300, response_format: { type: 'json_object' },
      messages: [{ role: 'user', content: 'Any JSON object.' }],
    });
    assert.deepEqual(JSON.parse(c.choices[0].message.content),
      { mock: 'both', call: 0, text: TEXT });
  });

  test('a malformed response_format is a 400 naming the field', T, async () => {
    await assert.rejects(openai.chat.completions.create({
      model: 'app/claude', messages,
      response_format: { type: 'json_schema', json_schema: { name: 'x' } },
    }), (e) => {
      assert.equal(e.status, 400);
      assert.match(e.message, /response_format\.json_schema\.schema is required/);
      return true;
    });
  });
});
