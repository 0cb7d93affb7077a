# A per-item program for engine tests: appends its key to marks.txt, then behaves as asked.
#   script.py KEY [ok|fail|retry-once|slow|echo-secret] [SECRET]
import json, os, sys, time

key, mode = sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "ok"
if mode == "slow":
    time.sleep(0.3)
if mode == "retry-once":
    flag = f"retry-{key}.flag"
    if not os.path.exists(flag):
        open(flag, "w").close()
        print("server busy, try later", file=sys.stderr)
        sys.exit(75)
if mode == "fail":
    print(f"record {key} rejected: no such customer", file=sys.stderr)
    sys.exit(1)
if mode == "hang":
    time.sleep(30)
with open("marks.txt", "a") as f:
    f.write(key + "\n")
out = {"key": key, "attempt": os.environ.get("CXFLOW_ATTEMPT")}
if mode == "echo-secret":
    out["token"] = sys.argv[3]
print(json.dumps(out))
