// Drives the helper with the official @upstash/redis client: floodgate's decision script passes
// (EVAL and EVALSHA, alone and in a pipeline), everything else is refused.
// Prints one line per check; the Go test compares them.
import { Redis } from "@upstash/redis";

const redis = new Redis({ url: process.env.HELPER_URL, token: process.env.HELPER_TOKEN, automaticDeserialization: false });
const script = process.env.DECIDE_LUA, sha = process.env.DECIDE_SHA, args = JSON.parse(process.env.DECIDE_ARGS);
const key = "{floodgate:upstash:1}";
const out = [];
const refused = async (name, f) => {
  try {
    await f();
    out.push(name + " allowed");
  } catch (e) {
    out.push(name + " refused " + String(e.message).includes("ERR"));
  }
};
out.push("ping " + (await redis.ping()));
out.push("eval " + JSON.stringify(await redis.eval(script, [key], args)));
out.push("evalsha " + JSON.stringify(await redis.evalsha(sha, [key], args)));
const p = redis.pipeline();
p.ping();
p.evalsha(sha, [key], args);
out.push("pipeline " + JSON.stringify(await p.exec()));
await refused("scriptLoad", () => redis.scriptLoad("return 1"));
await refused("other script", () => redis.eval("return redis.call('DBSIZE')", [], []));
await refused("set", () => redis.set("a", "b"));
const bad = new Redis({ url: process.env.HELPER_URL, token: "wrong" });
try {
  await bad.ping();
  out.push("bad token accepted");
} catch (e) {
  out.push("bad token refused");
}
console.log(out.join("\n"));
