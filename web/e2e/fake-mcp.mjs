// A local MCP server built with the official TypeScript SDK, over
// streamable HTTP (stateless: a server per request, as the SDK's docs show
// for that mode). One tool, `forecast`, answers "Sunny in <city>"; every
// request must carry the bearer token.
import { createServer } from "node:http";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import { z } from "zod";

export const MCP_TOKEN = "mcp-e2e-token";

function tools() {
  const server = new McpServer({ name: "weather", version: "1.0.0" });
  server.registerTool(
    "forecast",
    { description: "Tomorrow's weather in a city", inputSchema: { city: z.string() } },
    async ({ city }) => ({ content: [{ type: "text", text: `Sunny in ${city}` }] }),
  );
  return server;
}

export async function startFakeMcp() {
  const http = createServer(async (req, res) => {
    if (req.headers.authorization !== `Bearer ${MCP_TOKEN}`) {
      res.writeHead(401).end();
      return;
    }
    const server = tools();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on("close", () => {
      transport.close();
      server.close();
    });
    await server.connect(transport);
    await transport.handleRequest(req, res);
  });
  await new Promise((resolve) => http.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${http.address().port}/mcp`,
    stop: () => new Promise((resolve) => http.close(resolve)),
  };
}
