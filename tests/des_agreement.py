"""Random continuous-serving cases: the closed form against the simulator (run by hand:
``python tests/des_agreement.py SEED``); prints the cases outside 10 % TTFT / 5 % TPOT."""
import sys, random, time
sys.path.insert(0, __import__("os").path.dirname(__file__))
from dse.simulation import point
from dse.kernels.simulate import simulate
rng = random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
bad = 0
for k in range(40):
    g = dict(engine=rng.choice(["vllm", "sglang", "trtllm", "roofline"]),
             batch=rng.choice([1, 2, 3, 5, 8, 13, 21, 34, 64, 100, 160]),
             input_tokens=rng.choice([64, 200, 512, 1000, 2048, 4096]),
             output_tokens=rng.choice([2, 16, 64, 200, 512]),
             max_batched_tokens=rng.choice([0, 256, 512, 2048]))
    summ, it, eng, slots = point(**g)
    budget = g["max_batched_tokens"] or eng.max_batched_tokens
    r = simulate(it, g["batch"], g["input_tokens"], g["output_tokens"], budget, eng.chunked_prefill,
                 eng.mixed_prefill, 0, int(slots), eng.request_overhead_s, eng.iteration_overhead_s, stagger=True,
                 overlap=eng.overlap_scheduling)
    et = summ["ttft_s"]/r["ttft_s"]-1; ep = summ["tpot_s"]/r["tpot_s"]-1
    flag = abs(et) > 0.10 or (g["output_tokens"] > 1 and abs(ep) > 0.05)
    bad += flag
    if flag: print(g, "ttft %+.0f%% tpot %+.1f%%" % (100*et, 100*ep), "share %.2f" % r["prefill_share"])
print("bad", bad, "of 40")
