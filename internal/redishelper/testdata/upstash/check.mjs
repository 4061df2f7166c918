// Drives the helper with the official @upstash/redis client, for the commands it allows.
// Prints one line per check; the Go test compares them.
import { Redis } from "@upstash/redis";

const redis = new Redis({ url: process.env.HELPER_URL, token: process.env.HELPER_TOKEN, automaticDeserialization: false });
const out = [];
out.push("ping " + (await redis.ping()));
const sha = await redis.scriptLoad("return {KEYS[1], ARGV[1]}");
out.push("scriptLoad " + sha.length);
out.push("evalsha " + JSON.stringify(await redis.evalsha(sha, ["k"], ["v"])));
out.push("eval " + JSON.stringify(await redis.eval("return 41 + 1", [], [])));
const p = redis.pipeline();
p.ping();
p.eval("return 'x'", [], []);
out.push("pipeline " + JSON.stringify(await p.exec()));
try {
  await redis.set("a", "b");
  out.push("set allowed");
} catch (e) {
  out.push("set refused " + String(e.message).includes("not allowed"));
}
const bad = new Redis({ url: process.env.HELPER_URL, token: "wrong" });
try {
  await bad.ping();
  out.push("bad token accepted");
} catch (e) {
  out.push("bad token refused");
}
console.log(out.join("\n"));
