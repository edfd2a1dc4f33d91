# Generates testdata/runs (synthetic result files for the report golden test): python3 gen_fixture.py runs
import json, os, sys
root = sys.argv[1]
def lat(base):
    return {"p50": base, "p90": base*2, "p99": base*4, "p999": base*8, "max": base*16, "count": 1000}
def step(k, rate, conns, base, loss=0.0, dpw=True, pub=False):
    d = {"k": k, "rate": rate, "published": int(rate*4), "publish_secs": 4.0,
         "expected": int(rate*4*conns), "received": int(rate*4*conns*(1-loss/100)),
         "loss_pct": loss, "deliveries_per_s": rate*conns*(1-loss/100), "latency_us": lat(base),
         "server_cpu_s": 1.25 + k, "server_cpu_pct": 31.25 + 10*k,
         "server_cpu_s_per_m": 0.4321 + 0.1*k, "deliveries_per_cpu_s": 2345678.5 - 1000*k,
         "server_write_calls": 1000, "loadgen_cpu_pct": 40.5, "other_cpu_pct": 3.25,
         "server_rss_kb": 20480 + 512*k, "loadavg": "1.20 0.80 0.50" if k % 2 == 0 else "2.75 1.10 0.90",
         "window_s": 5.0}
    if dpw:
        d["deliveries_per_write"] = 12.345 + k
    if pub:
        d["publish_latency_us"] = lat(base // 2)
        d["publish_ok"] = int(rate*4)
        d["publish_errors"] = k
        d["server_cpu_us_per_publish"] = 12.5 + k
    return d
def result(scenario, target, label, steps=(), extra=None, protocol="json", size=128, procs=1):
    e = {"connected": 1000, "connect_ms": 850, "slow": 10, "churns": 42,
         "churn_latency_us": lat(1500), "slow_closed": 9, "unexpected_closes": 0,
         "peak_rss_kb": 65536, "base_rss_kb": 8192}
    if extra: e.update(extra)
    return {"scenario": scenario, "target": target, "label": label, "protocol": protocol, "via": "http",
            "params": {"conns": 1000, "workers": 2, "server_processes": procs, "rates": [10, 50, 100],
                       "step_secs": 4.0, "size": size, "slow_every": 100, "channel": "bench",
                       "hold_secs": 20.0, "group_size": 10, "churn_pct_per_min": 20.0, "missed": 10, "history": False},
            "started_unix_us": 1, "loadavg_start": "0.5 0.5 0.5", "steps": list(steps), "extra": e}
def fan(target, label, scale, **kw):
    return result("fanout", target, label, [step(0, 100, 1000, 800*scale), step(1, 500, 1000, 5000*scale, dpw=target!="nats"),
                                            step(2, 1000, 1000, 90000*scale, loss=0.5 if scale > 1 else 2.0)], **kw)
def idle(target, label, kb, cpu, procs=1):
    return result("idle", target, label, extra={"connect_ms": 1234, "connects_per_s": 8103.7, "rss_kb_per_conn": kb,
        "cpu_us_per_s_per_conn": cpu, "cpu_pct": 1.75, "loadavg": "0.40 0.30 0.20", "kernel_tcp_kb_per_conn_both_ends": 9.5,
        "rss_base_kb": 4000, "rss_kb": 12000, "hold_s": 20.0}, procs=procs)
def run(name, date, commit, results, only="", mode="quick"):
    d = os.path.join(root, name); os.makedirs(d, exist_ok=True)
    for n, v in results.items():
        json.dump(v, open(os.path.join(d, n + ".json"), "w"), separators=(",", ":"))
    json.dump({"cpu": "Test CPU @ 2.0GHz", "cores": 2, "mem_gib": 8, "kernel": "6.1.0", "nofile": 1048576,
               "mode": mode, "only": only, "suite_seconds": 512, "nats": "nats-server: v2.10.1", "redis": "v=7.0.15",
               "socketio": "4.8.1", "node": "v20.1.0", "rustc": "rustc 1.90.0", "gyre_commit": commit, "date": date},
              open(os.path.join(d, "machine.json"), "w"))
full = {
 "s1-idle-gyre": idle("gyre", "gyre", 6.25, 1.125),
 "s1-idle-floor": idle("floor", "floor", 3.5, 0.5),
 "s1-idle-nats": idle("nats", "nats", 12.0, 2.5, procs=2),
 "s2-fanout-gyre": fan("gyre", "gyre", 1),
 "s2-fanout-gyre-protobuf": fan("gyre", "gyre protobuf", 1, protocol="protobuf"),
 "s2-fanout-floor": fan("floor", "floor", 0.5),
 "s2-fanout-floor-protobuf": fan("floor", "floor protobuf", 0.5, protocol="protobuf"),
 "s2-fanout-nats": fan("nats", "nats", 2),
 "s2-fanout-socketio": result("fanout", "socketio", "socketio", [step(0, 100, 1000, 300000)]),
 "s2x-fanout-gyre-redis": fan("gyre", "gyre, Redis engine, 2 nodes", 1.5),
 "s3-group-gyre": result("group", "gyre", "gyre", [step(0, 100, 10, 900), step(1, 200, 10, 1900)]),
 "s3-group-nats": result("group", "nats", "nats", [step(0, 100, 10, 700, dpw=False)]),
 "s4-publish-gyre-api": result("publish", "gyre", "gyre API", [step(0, 1000, 0, 300, pub=True), step(1, 2000, 0, 600, pub=True)]),
 "s4-publish-nats": result("publish", "nats", "nats verbose", [step(0, 1000, 0, 200, pub=True)]),
 "s5-recovery-gyre": result("recovery", "gyre", "gyre", extra={"connected": 10000, "recovered_ok": 10000, "recovered_failed": 0,
     "recovered_pubs": 100000, "expected_pubs": 100000, "time_to_all_ms": 1234, "recover_latency_us": lat(20000),
     "server_cpu_s": 1.5, "loadavg": "1.00 1.00 1.00"}),
 "s5-recovery-socketio": result("recovery", "socketio", "socketio", extra={"connected": 10000, "recovered_ok": 9000, "recovered_failed": 1000,
     "recovered_pubs": 90000, "expected_pubs": 100000, "time_to_all_ms": 4321, "recover_latency_us": lat(90000),
     "server_cpu_s": 3.5, "loadavg": "3.00 1.00 1.00"}),
 "s7-slow-gyre": result("fanout", "gyre", "gyre", [step(0, 100, 990, 900), step(1, 500, 990, 6000), step(2, 777, 990, 6000)]),
 "s7-slow-floor": result("fanout", "floor", "floor", [step(0, 100, 990, 500)]),
}
run("20260101-100000-quick", "2026-01-01T10:00:00Z", "abc1234", full)
run("20260102-100000-quick", "2026-01-02T10:00:00Z", "abc1234", {k: v for k, v in full.items() if not k.startswith("s3")})
run("20260103-100000-quick", "2026-01-03T10:00:00Z", "abc1234", full)
v4 = dict(full)
v4["s2-fanout-socketio"] = fan("socketio", "socketio", 0.25)
v4["s2-fanout-floor"] = fan("floor", "floor", 3)
del v4["s2-fanout-floor-protobuf"]
del v4["s1-idle-floor"]
v4["s2-fanout-gyre"] = fan("gyre", "gyre", 1, size=512)
run("20260104-100000-quick", "2026-01-04T10:00:00Z", "abc1234-dirty", v4, mode="full")
run("20260105-100000-quick", "2026-01-05T10:00:00Z", "abc1234", {"s1-idle-gyre": full["s1-idle-gyre"]}, only="s1")
