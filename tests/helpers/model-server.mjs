// A scripted model on loopback that speaks each coding CLI's vendor API as documented, so the
// real CLIs run here with only their model replaced:
//
// - Anthropic Messages with streaming events (POST /v1/messages): Claude Code
//   (https://docs.anthropic.com/en/api/messages-streaming);
// - OpenAI Responses with streaming events (POST /v1/responses): Codex CLI
//   (https://platform.openai.com/docs/api-reference/responses-streaming);
// - OpenAI Chat Completions (POST /v1/chat/completions, streamed or not): Aider
//   (https://platform.openai.com/docs/api-reference/chat), answered in Aider's `whole` edit
//   format (https://aider.chat/docs/more/edit-formats.html): a file name, then the file in a fence;
// - Gemini streamGenerateContent (POST /v1beta/models/{model}:streamGenerateContent?alt=sse):
//   Gemini CLI (https://ai.google.dev/api/generate-content).
//
// The script is one shell command per conversation. On a conversation's first request the
// server reads the prompt the CLI sent, asks `decide(prompt)` what to do (the test reads the
// task from it there, as a model would), and answers with a call of the CLI's own shell tool
// running that command; once the tool's result comes back it answers with the final message.
// Aider has no shell tool: `decide` gives it `files` (path → content) to write instead.
// A prompt `decide` finds nothing in is answered with a refusal and recorded in `refused`.

import { createServer } from "node:http";

/** Fixed usage per model call, so tests can check what the CLIs report. */
export const USAGE = { input: 1000, output: 50 };

function textOf(content) {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content.map((part) => (typeof part === "string" ? part : part.text ?? "")).join("\n");
}

function sse(res, events) {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  for (const [name, data] of events) {
    if (name) res.write(`event: ${name}\n`);
    res.write(`data: ${JSON.stringify(data)}\n\n`);
  }
  res.end();
}

export async function modelServer(decide) {
  const state = { requests: [], refused: [], decisions: [] };
  // Each conversation's decision, by its opening prompt: several CLIs may talk at once.
  const conversations = new Map();

  /** The command for a prompt, or null when the prompt gives nothing to act on. */
  function plan(vendor, prompt) {
    const decision = decide(prompt);
    if (!decision) state.refused.push({ vendor, prompt: prompt.slice(0, 2000) });
    else state.decisions.push({ vendor, ...decision });
    if (decision) conversations.set(prompt, decision);
    return decision;
  }

  /** The final message of the conversation that opened with `prompt`. */
  function final(prompt) {
    for (const [opening, decision] of conversations) if (prompt.startsWith(opening) || opening.startsWith(prompt)) return decision.final;
    return "Done.";
  }

  function anthropic(body, res) {
    const tools = (body.tools ?? []).map((t) => t.name);
    const messages = body.messages ?? [];
    const answered = messages.some((m) => Array.isArray(m.content) && m.content.some((c) => c.type === "tool_result"));
    const system = textOf(body.system);
    state.requests.push({ vendor: "anthropic", model: body.model, tools, answered, system });
    let block;
    let stop = "end_turn";
    if (tools.includes("Bash") && !answered) {
      const decision = plan("anthropic", textOf(messages.find((m) => m.role === "user")?.content));
      block = decision
        ? { type: "tool_use", id: "toolu_01", name: "Bash", input: { command: decision.command, description: "make the change the task asks for" } }
        : { type: "text", text: "The prompt names no task, so there is nothing to do." };
      if (decision) stop = "tool_use";
    } else {
      const opening = textOf(messages.find((m) => m.role === "user")?.content);
      block = { type: "text", text: tools.length ? final(opening) : "ok" };
    }
    const usage = { input_tokens: USAGE.input, output_tokens: USAGE.output, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 };
    const message = { id: `msg_${state.requests.length}`, type: "message", role: "assistant", model: body.model, content: [block], stop_reason: stop, stop_sequence: null, usage };
    if (!body.stream) {
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(JSON.stringify(message));
    }
    const start = { ...message, content: [], stop_reason: null, usage: { ...usage, output_tokens: 1 } };
    const events = [["message_start", { type: "message_start", message: start }]];
    if (block.type === "text") {
      events.push(["content_block_start", { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } }]);
      events.push(["content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: block.text } }]);
    } else {
      events.push(["content_block_start", { type: "content_block_start", index: 0, content_block: { type: "tool_use", id: block.id, name: block.name, input: {} } }]);
      events.push(["content_block_delta", { type: "content_block_delta", index: 0, delta: { type: "input_json_delta", partial_json: JSON.stringify(block.input) } }]);
    }
    events.push(["content_block_stop", { type: "content_block_stop", index: 0 }]);
    events.push(["message_delta", { type: "message_delta", delta: { stop_reason: stop, stop_sequence: null }, usage: { output_tokens: USAGE.output } }]);
    events.push(["message_stop", { type: "message_stop" }]);
    sse(res, events);
  }

  function responses(body, res) {
    const tools = (body.tools ?? []).map((t) => t.name ?? t.type);
    const input = Array.isArray(body.input) ? body.input : [];
    const answered = input.some((i) => i.type === "function_call_output" || i.type === "custom_tool_call_output");
    state.requests.push({ vendor: "openai", model: body.model, tools, answered, system: textOf(body.instructions) });
    let item;
    const shell = ["exec_command", "shell_command", "shell"].find((name) => tools.includes(name));
    if (shell && !answered) {
      const decision = plan("openai", input.filter((i) => i.role === "user").map((i) => textOf(i.content)).join("\n"));
      if (decision) {
        const args = shell === "exec_command" ? { cmd: decision.command } : shell === "shell_command" ? { command: decision.command } : { command: ["bash", "-lc", decision.command] };
        item = { type: "function_call", id: "fc_01", call_id: "call_01", name: shell, arguments: JSON.stringify(args), status: "completed" };
      }
    }
    if (!item) {
      const opening = input.filter((i) => i.role === "user").map((i) => textOf(i.content)).join("\n");
      const text = answered ? final(opening) : "The prompt names no task, so there is nothing to do.";
      item = { type: "message", id: "msg_01", role: "assistant", status: "completed", content: [{ type: "output_text", text, annotations: [] }] };
    }
    const usage = { input_tokens: USAGE.input, input_tokens_details: { cached_tokens: 0 }, output_tokens: USAGE.output, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: USAGE.input + USAGE.output };
    const id = `resp_${state.requests.length}`;
    const events = [
      ["response.created", { type: "response.created", response: { id, status: "in_progress" } }],
      ["response.output_item.added", { type: "response.output_item.added", output_index: 0, item }],
    ];
    if (item.type === "message") {
      events.push(["response.output_text.delta", { type: "response.output_text.delta", item_id: item.id, output_index: 0, content_index: 0, delta: item.content[0].text }]);
    }
    events.push(["response.output_item.done", { type: "response.output_item.done", output_index: 0, item }]);
    events.push(["response.completed", { type: "response.completed", response: { id, status: "completed", output: [item], usage } }]);
    sse(res, events);
  }

  function chat(body, res) {
    const messages = body.messages ?? [];
    const prompt = messages.filter((m) => m.role === "user").map((m) => textOf(m.content)).join("\n");
    state.requests.push({ vendor: "chat", model: body.model, tools: [], answered: false, system: messages.filter((m) => m.role === "system").map((m) => textOf(m.content)).join("\n") });
    const decision = plan("chat", prompt);
    const files = Object.entries(decision?.files ?? {});
    const content = files.length
      ? files.map(([path, text]) => `${path}\n\`\`\`\n${text}\`\`\`\n`).join("\n") + `\n${decision.final}`
      : "The prompt names no task, so there is nothing to do.";
    const usage = { prompt_tokens: USAGE.input, completion_tokens: USAGE.output, total_tokens: USAGE.input + USAGE.output };
    if (!body.stream) {
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(JSON.stringify({ id: "chatcmpl-1", object: "chat.completion", created: 0, model: body.model, choices: [{ index: 0, message: { role: "assistant", content }, finish_reason: "stop" }], usage }));
    }
    sse(res, [
      [null, { id: "chatcmpl-1", object: "chat.completion.chunk", created: 0, model: body.model, choices: [{ index: 0, delta: { role: "assistant", content }, finish_reason: null }] }],
      [null, { id: "chatcmpl-1", object: "chat.completion.chunk", created: 0, model: body.model, choices: [{ index: 0, delta: {}, finish_reason: "stop" }], usage }],
    ]);
  }

  function gemini(body, res, model) {
    const tools = (body.tools ?? []).flatMap((t) => (t.functionDeclarations ?? []).map((d) => d.name));
    const contents = body.contents ?? [];
    const answered = contents.some((c) => (c.parts ?? []).some((p) => p.functionResponse));
    state.requests.push({ vendor: "gemini", model, tools, answered, system: textOf(body.systemInstruction?.parts) });
    let part;
    if (tools.includes("run_shell_command") && !answered) {
      const decision = plan("gemini", (contents.find((c) => c.role === "user")?.parts ?? []).map((p) => p.text ?? "").join("\n"));
      part = decision ? { functionCall: { name: "run_shell_command", args: { command: decision.command, description: "make the change the task asks for" } } } : { text: "The prompt names no task, so there is nothing to do." };
    } else {
      const opening = (contents.find((c) => c.role === "user")?.parts ?? []).map((p) => p.text ?? "").join("\n");
      part = { text: answered ? final(opening) : "ok" };
    }
    const answer = {
      candidates: [{ content: { role: "model", parts: [part] }, finishReason: "STOP", index: 0 }],
      usageMetadata: { promptTokenCount: USAGE.input, candidatesTokenCount: USAGE.output, totalTokenCount: USAGE.input + USAGE.output },
      modelVersion: model,
    };
    sse(res, [[null, answer]]);
  }

  const server = createServer((req, res) => {
    let raw = "";
    req.on("data", (chunk) => (raw += chunk));
    req.on("end", () => {
      const path = new URL(req.url, "http://x").pathname;
      let body = {};
      try {
        body = raw ? JSON.parse(raw) : {};
      } catch {
        res.writeHead(400, { "content-type": "application/json" });
        return res.end(JSON.stringify({ error: { message: "not JSON" } }));
      }
      const json = (value) => {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(value));
      };
      if (req.method === "HEAD" || (req.method === "GET" && path === "/")) return json({});
      if (req.method === "GET" && path.endsWith("/models")) return json({ object: "list", data: [] });
      if (path.endsWith("/v1/messages/count_tokens")) return json({ input_tokens: USAGE.input });
      if (path.endsWith("/v1/messages")) return anthropic(body, res);
      if (path.endsWith("/responses")) return responses(body, res);
      if (path.endsWith("/chat/completions")) return chat(body, res);
      const model = path.match(/\/models\/([^:/]+):streamGenerateContent$/)?.[1];
      if (model) return gemini(body, res, model);
      if (path.endsWith(":countTokens")) return json({ totalTokens: USAGE.input });
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: `no ${req.method} ${path} here` } }));
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, state, close: () => server.close() };
}
