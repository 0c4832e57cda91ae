// The official `openai` npm client (pinned in package-lock.json) against slogate serve, with
// slogate mock as the provider. What a developer pointing their app at the gateway sees.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';

import { MASTER_KEY, PROVIDER_KEY, startGateway, startMock, stop } from './helpers.mjs';

const T = { timeout: 15000 };

// DESIGN §6: the headers on every proxied answer (x-slogate-bypass and x-slogate-faults only
// while those are on).
const PROXIED_HEADERS = ['x-request-id', 'x-slogate-deployment', 'x-slogate-provider',
  'x-slogate-attempts', 'x-slogate-failover-hops', 'x-slogate-cache', 'x-slogate-cost-usd',
  'x-slogate-latency-ms', 'x-slogate-overhead-us'];
function assertProxiedHeaders(headers, what) {
  const get = (h) => (typeof headers.get === 'function' ? headers.get(h) : headers[h]);
  const missing = PROXIED_HEADERS.filter((h) => get(h) == null);
  assert.deepEqual(missing, [], `${what}: every proxied answer carries the x-slogate-* headers`);
  assert.equal(get('x-slogate-deployment'), 'primary', `${what}: x-slogate-deployment`);
}

// The mock's vector for input i of byte length len (docs/mock.md), as float32 values.
const mockVector = (len, i) => Array.from(new Float32Array([(len % 7) / 7, 0.5, -0.25, i / 10]));

describe('openai SDK through slogate', () => {
  let mock;
  let gw;
  let client;

  before(async () => {
    mock = await startMock();
    gw = await startGateway(mock);
    client = new OpenAI({ apiKey: MASTER_KEY, baseURL: gw.baseURL, maxRetries: 0, timeout: 10000 });
  });

  after(async () => {
    const code = gw ? await stop(gw.child) : 0;
    if (mock) await stop(mock.child);
    if (gw) gw.cleanup();
    // The gateway shuts down cleanly on SIGTERM (exit 0), not by being killed.
    assert.equal(code, 0, 'gateway exit code after SIGTERM');
  });

  test('chat.completions.create (non-streaming)', T, async () => {
    const { data, response } = await client.chat.completions
      .create({
        model: 'app/chat',
        messages: [{ role: 'user', content: 'Say hello' }],
        temperature: 0,
      })
      .withResponse();
    assert.equal(data.object, 'chat.completion');
    assert.equal(data.choices[0].message.role, 'assistant');
    assert.match(data.choices[0].message.content, /^Mock answer from provider-a/);
    assert.ok(data.usage.completion_tokens > 0, 'usage is relayed');
    assert.equal(response.headers.get('x-slogate-deployment'), 'primary');
    assert.equal(response.headers.get('x-slogate-provider'), 'openai');
    assert.ok(response.headers.get('x-request-id'), 'x-request-id');
    const last = await mock.last();
    assert.equal(last.model, 'gpt-4o-mini', 'the provider got its own model id, not the alias');
    assert.equal(last.authorization, `Bearer ${PROVIDER_KEY}`, "the deployment's key, not the client's");
  });

  test('chat.completions.create (streaming): chunks assemble into the answer', T, async () => {
    const messages = [{ role: 'user', content: 'Stream me a story' }];
    const stream = await client.chat.completions.create({
      model: 'app/chat', messages, stream: true, stream_options: { include_usage: true },
    });
    let text = '';
    let chunks = 0;
    let finish = null;
    let usage = null;
    for await (const chunk of stream) {
      chunks += 1;
      assert.equal(chunk.object, 'chat.completion.chunk');
      if (chunk.usage) usage = chunk.usage;
      const choice = chunk.choices[0];
      if (!choice) continue;
      text += choice.delta?.content ?? '';
      if (choice.finish_reason) finish = choice.finish_reason;
    }
    assert.ok(chunks >= 5, `several chunks (got ${chunks})`);
    assert.match(text, /^Mock answer from provider-a/);
    assert.equal(finish, 'stop');
    assert.ok(usage && usage.completion_tokens > 0, 'the usage chunk arrives');
    // The same prompt, not streamed, gives the same text (the mock is deterministic).
    const whole = await client.chat.completions.create({ model: 'app/chat', messages });
    assert.equal(text, whole.choices[0].message.content);
  });

  test('streamed chunks have a usage property only when include_usage is set', T, async () => {
    // OpenAI: "usage" is present on chunks only with stream_options.include_usage (null on all
    // but the last). The gateway always asks the deployment for usage, which then puts
    // "usage":null on every chunk; the SDK passes unknown keys through, so it would show.
    for (const asked of [false, true]) {
      const stream = await client.chat.completions.create({
        model: 'app/chat', messages: [{ role: 'user', content: 'Usage or not' }], stream: true,
        ...(asked ? { stream_options: { include_usage: true } } : {}),
      });
      const chunks = [];
      for await (const chunk of stream) chunks.push(chunk);
      assert.ok(chunks.length >= 5, `several chunks (got ${chunks.length})`);
      if (!asked) {
        const withUsage = chunks.filter((c) => 'usage' in c);
        assert.deepEqual(withUsage, [], 'no chunk has a usage property');
        continue;
      }
      assert.ok(chunks.every((c) => 'usage' in c), 'every chunk has a usage property');
      assert.deepEqual(chunks.slice(0, -1).map((c) => c.usage), chunks.slice(0, -1).map(() => null),
        'usage is null on every chunk but the last');
      assert.deepEqual(chunks.at(-1).choices, []);
      assert.ok(chunks.at(-1).usage.completion_tokens > 0, 'the last chunk has the numbers');
    }
  });

  test('embeddings.create: the SDK asks for base64 by default and decodes it', T, async () => {
    const { data, response } = await client.embeddings
      .create({ model: 'app/chat', input: ['hello', 'a'] })
      .withResponse();
    assert.equal((await mock.last()).body.encoding_format, 'base64', 'the SDK asked for base64');
    assert.deepEqual(data.data.map((d) => Array.from(d.embedding)), [mockVector(5, 0), mockVector(1, 1)],
      'the vectors decode to the float32 values the provider sent');
    assert.ok(data.usage.prompt_tokens > 0, 'usage relayed');
    assertProxiedHeaders(response.headers, 'embeddings');
    assert.ok(Number(response.headers.get('x-slogate-cost-usd')) > 0, 'the embedding is priced');
    // Asked for floats, the SDK returns what the provider sent as it is.
    const floats = await client.embeddings.create({ model: 'app/chat', input: [1, 2], encoding_format: 'float' });
    assert.equal((await mock.last()).body.encoding_format, 'float');
    assert.deepEqual(floats.data.map((d) => d.embedding.length), [4, 4]);
    assert.equal(floats.data[1].embedding[1], 0.5);
  });

  test("embeddings.create with an empty input -> BadRequestError in OpenAI's words", T, async () => {
    for (const input of ['', [], ['a', '']]) {
      await assert.rejects(client.embeddings.create({ model: 'app/chat', input }), (e) => {
        assert.ok(e instanceof OpenAI.BadRequestError, `BadRequestError, got ${e?.constructor?.name}: ${e}`);
        assert.match(e.message, /^400 '\$\.input' is invalid\. Please check the API reference/);
        assert.equal(e.param, null);
        return true;
      });
    }
  });

  test('every proxied answer carries the DESIGN §6 headers (withResponse)', T, async () => {
    const body = { model: 'app/chat', messages: [{ role: 'user', content: 'headers' }] };
    const whole = await client.chat.completions.create(body).withResponse();
    assertProxiedHeaders(whole.response.headers, 'chat');
    const streamed = await client.chat.completions.create({ ...body, stream: true }).withResponse();
    assertProxiedHeaders(streamed.response.headers, 'stream');
    for await (const chunk of streamed.data) assert.equal(chunk.object, 'chat.completion.chunk');
    // A failed answer's (APIError.headers): in the provider 500 test below, which fails the
    // deployment once (two more failures within 60 s would cool it down for the next tests).
  });

  test('the SDK\'s own headers (x-stainless-*, OpenAI-Organization, OpenAI-Project) stay at the gateway', T, async () => {
    const org = new OpenAI({ apiKey: MASTER_KEY, baseURL: gw.baseURL, maxRetries: 0,
      organization: 'org-client', project: 'proj-client' });
    const r = await org.chat.completions.create({ model: 'app/chat', messages: [{ role: 'user', content: 'x' }] });
    assert.equal(r.object, 'chat.completion');
    const { headers } = await mock.last();
    const leaked = Object.keys(headers).filter((h) => /^(x-stainless|openai-)/.test(h));
    assert.deepEqual(leaked, [], 'none reaches the provider');
    assert.equal(headers.authorization, `Bearer ${PROVIDER_KEY}`, "the deployment's key");
  });

  test('models.list()', T, async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.deepEqual(ids, ['app/chat']);
  });

  test('models.retrieve(): the listed entry; an unknown id is a NotFoundError', T, async () => {
    const listed = (await client.models.list()).data[0];
    // The SDK puts the id in the path as it is: GET /v1/models/app/chat.
    const m = await client.models.retrieve('app/chat');
    assert.deepEqual({ ...m }, { ...listed });
    await assert.rejects(client.models.retrieve('no-such-model'), (e) => {
      assert.ok(e instanceof OpenAI.NotFoundError, `NotFoundError, got ${e?.constructor?.name}: ${e}`);
      assert.equal(e.code, 'model_not_found');
      return true;
    });
  });

  test('unknown model -> NotFoundError 404 model_not_found', T, async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
      (e) => {
        assert.ok(e instanceof OpenAI.NotFoundError, `NotFoundError, got ${e?.constructor?.name}: ${e}`);
        assert.equal(e.status, 404);
        assert.equal(e.code, 'model_not_found');
        assert.match(e.message, /no-such-model/);
        return true;
      },
    );
  });

  test('wrong key -> AuthenticationError 401', T, async () => {
    const bad = new OpenAI({ apiKey: 'sk-wrong', baseURL: gw.baseURL, maxRetries: 0 });
    await assert.rejects(
      bad.chat.completions.create({ model: 'app/chat', messages: [{ role: 'user', content: 'x' }] }),
      (e) => {
        assert.ok(e instanceof OpenAI.AuthenticationError, `AuthenticationError, got ${e?.constructor?.name}: ${e}`);
        assert.equal(e.status, 401);
        assert.equal(e.code, 'invalid_api_key');
        return true;
      },
    );
    await assert.rejects(bad.models.list(), OpenAI.AuthenticationError);
  });

  test('bad request -> BadRequestError 400', T, async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'app/chat', messages: 'not a list' }),
      (e) => {
        assert.ok(e instanceof OpenAI.BadRequestError, `BadRequestError, got ${e?.constructor?.name}: ${e}`);
        assert.equal(e.status, 400);
        assert.match(e.message, /messages/);
        assert.equal(e.param, 'messages', 'error.param names the field');
        return true;
      },
    );
  });

  test('provider 500 -> InternalServerError 502 naming the deployment', T, async () => {
    await mock.faults({ status: 500 });
    try {
      await assert.rejects(
        client.chat.completions.create({ model: 'app/chat', messages: [{ role: 'user', content: 'x' }] }),
        (e) => {
          assert.ok(e instanceof OpenAI.InternalServerError, `InternalServerError, got ${e?.constructor?.name}: ${e}`);
          assert.equal(e.status, 502);
          assert.match(e.message, /primary/);
          assertProxiedHeaders(e.headers, '502');
          return true;
        },
      );
    } finally {
      await mock.clearFaults();
    }
  });

  test('stream cut mid-way by the provider -> the SDK raises, not a silent short answer', T, async () => {
    await mock.faults({ reset: 'mid', tokens_per_s: 50 }); // paced: the first half arrives before the reset
    let text = '';
    try {
      await assert.rejects(async () => {
        const stream = await client.chat.completions.create({
          model: 'app/chat', messages: [{ role: 'user', content: 'x' }], stream: true,
        });
        for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? '';
      }, (e) => {
        assert.ok(e instanceof OpenAI.APIError, `APIError, got ${e?.constructor?.name}: ${e}`);
        assert.match(e.message, /primary/);
        return true;
      });
    } finally {
      await mock.clearFaults();
    }
    assert.ok(text.length > 0, 'some text arrived before the cut');
    // And the gateway keeps serving.
    const r = await client.chat.completions.create({ model: 'app/chat', messages: [{ role: 'user', content: 'x' }] });
    assert.match(r.choices[0].message.content, /^Mock answer/);
  });
});
