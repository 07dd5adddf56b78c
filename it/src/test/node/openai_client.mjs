// The official OpenAI Node SDK against a distserve server: completions and chat, whole and streamed, plus the
// errors a client sees (wrong key, bad request). Prints one JSON object on stdout for OpenAiNodeClientIT.
//
// Environment: DISTSERVE_BASE_URL (http://127.0.0.1:PORT/v1), DISTSERVE_API_KEY, DISTSERVE_MODEL.
import OpenAI from 'openai';

const baseURL = process.env.DISTSERVE_BASE_URL;
const apiKey = process.env.DISTSERVE_API_KEY;
const model = process.env.DISTSERVE_MODEL;
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60_000 });

// ignore_eos is not an OpenAI field; the SDK sends unknown fields as they are.
const completionRequest = { model, prompt: 'Shanghai is a city that ', max_tokens: 24, temperature: 0, ignore_eos: true };
const chatRequest = {
  model,
  messages: [{ role: 'user', content: 'Write a haiku about the sea.' }],
  max_tokens: 24,
  temperature: 0,
  ignore_eos: true,
};

async function errorOf(promise) {
  try {
    await promise;
    return null;
  } catch (e) {
    return {
      name: e.constructor.name,
      status: e.status ?? null,
      code: e.code ?? null,
      type: e.type ?? null,
      param: e.param ?? null,
      message: e.message,
    };
  }
}

const out = {};

const models = await client.models.list();
out.models = models.data.map((m) => m.id);

const completion = await client.completions.create(completionRequest);
out.completion = {
  id: completion.id,
  object: completion.object,
  text: completion.choices[0].text,
  finishReason: completion.choices[0].finish_reason,
  usage: completion.usage,
};

const completionStream = await client.completions.create({
  ...completionRequest,
  stream: true,
  stream_options: { include_usage: true },
});
let text = '';
let chunks = 0;
let usage = null;
let finishReason = null;
for await (const chunk of completionStream) {
  chunks++;
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    text += c.text ?? '';
    if (c.finish_reason) finishReason = c.finish_reason;
  }
}
out.completionStream = { text, chunks, usage, finishReason };

const chat = await client.chat.completions.create(chatRequest);
out.chat = {
  id: chat.id,
  object: chat.object,
  role: chat.choices[0].message.role,
  text: chat.choices[0].message.content,
  finishReason: chat.choices[0].finish_reason,
  usage: chat.usage,
};

const chatStream = await client.chat.completions.create({
  ...chatRequest,
  stream: true,
  stream_options: { include_usage: true },
});
text = '';
chunks = 0;
usage = null;
finishReason = null;
let role = null;
for await (const chunk of chatStream) {
  chunks++;
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    if (c.delta?.role) role = c.delta.role;
    text += c.delta?.content ?? '';
    if (c.finish_reason) finishReason = c.finish_reason;
  }
}
out.chatStream = { text, chunks, usage, finishReason, role };

// The SDK's helper that accumulates a chat stream into a final message.
const runner = client.chat.completions.stream({ ...chatRequest });
const final = await runner.finalChatCompletion();
out.chatStreamHelper = { text: final.choices[0].message.content, finishReason: final.choices[0].finish_reason };

const wrongKey = new OpenAI({ baseURL, apiKey: 'not-the-key', maxRetries: 0 });
out.wrongKeyError = await errorOf(wrongKey.completions.create(completionRequest));
out.badRequestError = await errorOf(client.completions.create({ ...completionRequest, top_p: 2 }));
out.unknownModelError = await errorOf(client.chat.completions.create({ ...chatRequest, model: 'no-such-model' }));

process.stdout.write(JSON.stringify(out) + '\n');
