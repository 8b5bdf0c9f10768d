import { memory } from "../../src/adapters/memory/index.ts";
import { testAdapter } from "../contract/suite.ts";

testAdapter("memory", async () => {
  const port = memory();
  return {
    port: () => ({ ...port, close: async () => {} }),
    inspect: {
      async hgetall(key) {
        const v = port.inspect(key);
        return v?.type === "hash" ? v.fields : null;
      },
      async xrange(key) {
        const v = port.inspect(key);
        return v?.type === "stream" ? [...v.entries] : [];
      },
      async pttl(key) {
        return port.pttl(key);
      },
      async keys(prefix) {
        return port.keys().filter((k) => k.startsWith(prefix));
      },
    },
    close: () => port.close(),
  };
});
