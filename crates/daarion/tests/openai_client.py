"""The official `openai` Python client against DAARION's LLM proxy and an
agent of the hub: only the base URL and the key change. Run by
tests/openai_python.rs, which sets OPENAI_BASE_URL, DAARION_AGENTS_URL and
OPENAI_API_KEY; exits non-zero on the first failure."""

import os

import openai

client = openai.OpenAI()

models = [m.id for m in client.models.list()]
assert models == ["chat"], models

reply = client.chat.completions.create(
    model="chat", messages=[{"role": "user", "content": "hello python"}]
)
assert reply.choices[0].message.content == "echo: hello python", reply
assert reply.usage.prompt_tokens > 0, reply.usage

text = ""
usage = None
for chunk in client.chat.completions.create(
    model="chat",
    messages=[{"role": "user", "content": "one two three"}],
    stream=True,
    stream_options={"include_usage": True},
):
    if chunk.choices and chunk.choices[0].delta.content:
        text += chunk.choices[0].delta.content
    if chunk.usage:
        usage = chunk.usage
assert text == "echo: one two three", text
assert usage is not None and usage.completion_tokens > 0, usage

tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}]
reply = client.chat.completions.create(
    model="chat", messages=[{"role": "user", "content": "please use the tool"}], tools=tools
)
call = reply.choices[0].message.tool_calls[0]
assert call.function.name == "lookup", call
assert reply.choices[0].finish_reason == "tool_calls"

emb = client.embeddings.create(model="chat", input=["a", "bb"])
assert len(emb.data) == 2 and len(emb.data[1].embedding) == 8, emb

try:
    client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    raise AssertionError("unknown model accepted")
except openai.NotFoundError as e:
    assert e.body["code"] == "model_not_found", e.body

# An agent of the city answers the same client at the hub's address.
agents = openai.OpenAI(base_url=os.environ["DAARION_AGENTS_URL"])
reply = agents.chat.completions.create(
    model="echo", messages=[{"role": "user", "content": "hello agent"}]
)
assert reply.choices[0].message.content == "echo: hello agent", reply
assert reply.usage.total_tokens > 0, reply.usage
text = "".join(
    chunk.choices[0].delta.content or ""
    for chunk in agents.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "stream it"}], stream=True
    )
    if chunk.choices
)
assert text == "echo: stream it", text

print("openai client: ok")
