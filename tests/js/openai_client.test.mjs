// qwenbox's OpenAI API driven by the official `openai` npm client: chat, streaming chat,
// completions, tool definitions, structured output, the Responses API (plain, streamed through
// the client's ResponseStream, function calls), errors. Usage: node openai_client.test.mjs QWENBOX_BINARY
// Starts `qwenbox serve` (demo model) on a free port, runs the checks, stops it with SIGTERM.
import { spawn } from "node:child_process";
import assert from "node:assert/strict";
import OpenAI from "openai";

const binary = process.argv[2];
const server = spawn(binary, ["serve", "--port", "0", "--threads", "2"], { stdio: ["ignore", "ignore", "pipe"] });
let log = "";
const port = await new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error("server did not start:\n" + log)), 60000);
  server.stderr.on("data", (d) => {
    log += d.toString();
    const m = log.match(/listening on http:\/\/[^:]+:(\d+)/);
    if (m && log.includes("ready:")) {
      clearTimeout(timer);
      resolve(Number(m[1]));
    }
  });
  server.on("exit", (code) => reject(new Error(`server exited ${code}:\n${log}`)));
});

const client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: "unused", maxRetries: 0 });
let failures = 0;
async function check(name, fn) {
  try {
    await fn();
    console.log(`ok   ${name}`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}: ${e.stack || e}`);
  }
}

await check("models", async () => {
  const models = await client.models.list();
  assert.equal(models.data[0].id, "qwenbox");
});

let text = "";
await check("chat", async () => {
  const r = await client.chat.completions.create({
    model: "qwenbox",
    messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hello!" }],
    max_tokens: 10,
    temperature: 0,
  });
  assert.equal(r.object, "chat.completion");
  assert.equal(r.choices[0].message.role, "assistant");
  assert.equal(typeof r.choices[0].message.content, "string");
  assert.equal(r.usage.completion_tokens, 10);
  text = r.choices[0].message.content;
});

await check("streaming chat", async () => {
  const stream = await client.chat.completions.create({
    model: "qwenbox",
    messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hello!" }],
    max_tokens: 10,
    temperature: 0,
    stream: true,
    stream_options: { include_usage: true },
  });
  let streamed = "";
  let usage = null;
  let finish = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      streamed += c.delta?.content ?? "";
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(streamed, text);
  assert.equal(finish, "length");
  assert.equal(usage.completion_tokens, 10);
});

await check("completions", async () => {
  const r = await client.completions.create({ model: "qwenbox", prompt: "Hello", max_tokens: 5, temperature: 0, logprobs: 2 });
  assert.equal(r.object, "text_completion");
  assert.equal(r.choices[0].logprobs.tokens.length, 5);
});

await check("tools", async () => {
  const r = await client.chat.completions.create({
    model: "qwenbox",
    messages: [{ role: "user", content: "What is the weather in Rome?" },
               { role: "assistant", content: null, tool_calls: [{ id: "call_0", type: "function",
                 function: { name: "get_weather", arguments: "{\"city\": \"Rome\"}" } }] },
               { role: "tool", tool_call_id: "call_0", content: "sunny" }],
    tools: [{ type: "function", function: { name: "get_weather", description: "Weather of a city",
              parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } }],
    max_tokens: 5,
  });
  assert.ok(["stop", "length", "tool_calls"].includes(r.choices[0].finish_reason));
});

await check("structured output (response_format json_schema)", async () => {
  const r = await client.chat.completions.create({
    model: "qwenbox",
    messages: [{ role: "user", content: "A user as JSON." }],
    max_tokens: 200,
    temperature: 0,
    response_format: {
      type: "json_schema",
      json_schema: {
        name: "user",
        strict: true,
        schema: {
          type: "object",
          properties: { name: { type: "string", maxLength: 10 }, admin: { type: "boolean" }, age: { type: "integer" } },
          required: ["name", "admin", "age"],
          additionalProperties: false,
        },
      },
    },
  });
  assert.equal(r.choices[0].finish_reason, "stop");
  const user = JSON.parse(r.choices[0].message.content);
  assert.deepEqual(Object.keys(user), ["name", "admin", "age"]);
  assert.equal(typeof user.admin, "boolean");
  assert.ok(Number.isInteger(user.age));
});

await check("responses (Responses API)", async () => {
  const r = await client.responses.create({
    model: "qwenbox", instructions: "Be brief.", input: "Hello!", max_output_tokens: 10, temperature: 0,
  });
  assert.equal(r.object, "response");
  assert.equal(r.output_text, text);  // the same generation as the chat request
  assert.equal(r.usage.output_tokens, 10);
  assert.equal(r.status, "incomplete");
});

await check("streaming responses (ResponseStream)", async () => {
  const stream = client.responses.stream({
    model: "qwenbox", instructions: "Be brief.", input: "Hello!", max_output_tokens: 10, temperature: 0,
  });
  let deltas = "";
  stream.on("response.output_text.delta", (e) => { deltas += e.delta; });
  const final = await stream.finalResponse();
  assert.equal(deltas, text);
  assert.equal(final.output[0].content[0].text, text);  // (this client sets output_text only when not streaming)
});

await check("responses with a function call", async () => {
  const tools = [{ type: "function", name: "get_weather", strict: true,
                   parameters: { type: "object", properties: { city: { type: "string", maxLength: 8 } },
                                 required: ["city"], additionalProperties: false } }];
  const r = await client.responses.create({
    model: "qwenbox", input: "Weather in Rome?", tools, tool_choice: { type: "function", name: "get_weather" },
    max_output_tokens: 60,
  });
  const call = r.output.find((o) => o.type === "function_call");
  assert.ok(call, JSON.stringify(r.output));
  assert.equal(typeof JSON.parse(call.arguments).city, "string");
  const next = await client.responses.create({
    model: "qwenbox", tools, max_output_tokens: 3,
    input: [{ role: "user", content: "Weather in Rome?" }, call,
            { type: "function_call_output", call_id: call.call_id, output: "sunny" }],
  });
  assert.equal(next.usage.output_tokens, 3);
});

await check("errors", async () => {
  await assert.rejects(
    client.chat.completions.create({ model: "qwenbox", messages: [], max_tokens: 5 }),
    (e) => e.status === 400 && /messages/.test(e.message));
  await assert.rejects(
    client.chat.completions.create({ model: "gpt-4", messages: [{ role: "user", content: "x" }] }),
    (e) => e.status === 404);
});

server.kill("SIGTERM");
const code = await new Promise((resolve) => server.on("exit", resolve));
if (code !== 0) {
  failures++;
  console.log(`FAIL server exit code ${code}`);
}
console.log(failures ? `${failures} failed` : "all passed");
process.exit(failures ? 1 : 0);
