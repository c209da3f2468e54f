"""CrewAI (PyPI) on the agent benchmark's two-step task: one agent with a
calculator tool, one task, against the same fake OpenAI server
(FAKE_BASE_URL), RUNS times, one crew kickoff after another. Prints one
JSON line: runs/s, p50/p99 latency and the CPU this process spent per run.
Run by bench/src/bin/agents.rs."""

import json
import os
import resource
import time

from crewai import LLM, Agent, Crew, Task
from crewai.tools import tool

import crewai


@tool("math_evaluate")
def evaluate(expression: str) -> str:
    """Evaluates an arithmetic expression."""
    allowed = set("0123456789+-*/(). ")
    if not set(expression) <= allowed:
        return "not arithmetic"
    return str(eval(expression))  # noqa: S307 - digits and operators only


llm = LLM(model="openai/fake-model", base_url=os.environ["FAKE_BASE_URL"], api_key="fake")
agent = Agent(
    role="Calculator",
    goal="Answer with the tool's result",
    backstory="Use your calculator.",
    tools=[evaluate],
    llm=llm,
    verbose=False,
    max_iter=3,
)
TASK = 'call math_evaluate {"expression": "6*7"}'  # CrewAI names the tool so


def once():
    task = Task(description=TASK, expected_output="the number", agent=agent)
    return Crew(agents=[agent], tasks=[task], verbose=False).kickoff()


once()  # warm-up
runs = int(os.environ.get("RUNS", "50"))
latencies = []
cpu = resource.getrusage(resource.RUSAGE_SELF)
started = time.perf_counter()
for _ in range(runs):
    t = time.perf_counter()
    result = once()
    latencies.append((time.perf_counter() - t) * 1000)
wall = time.perf_counter() - started
after = resource.getrusage(resource.RUSAGE_SELF)
latencies.sort()
print(
    json.dumps(
        {
            "version": crewai.__version__,
            "answer": str(result),
            "runs_per_second": runs / wall,
            "p50_ms": latencies[len(latencies) // 2],
            "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
            "cpu_ms_per_run": ((after.ru_utime + after.ru_stime) - (cpu.ru_utime + cpu.ru_stime))
            * 1000
            / runs,
        }
    )
)
