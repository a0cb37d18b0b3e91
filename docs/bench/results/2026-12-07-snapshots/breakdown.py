"""Where a profile's samples went: `perf script` output in, per thread and per function out.

usage: perf script -i perf.data > script.txt && python3 breakdown.py script.txt [callees per function]
For each function named in `targets`: the samples whose stack holds it (inclusive, share of all),
and the direct callees that took the most of them.
"""
import re,collections,sys
samples=open(sys.argv[1]).read().split('\n\n')
def frames(s):
    lines=[l.strip() for l in s.strip().split('\n')]
    return lines[0], [re.sub(r'\+0x[0-9a-f]+.*','',' '.join(l.split()[1:])) for l in lines[1:]]
tot=0
roots=collections.Counter(); kids=collections.defaultdict(collections.Counter)
targets=['factorwatch::detect::detect_batches','commit_pass::{{closure}}','factorwatch::spool::writer::run','Forwarder::pass','LiveCorrelation::record','Correlator::save','Correlator::observe','evict_all','fold_incidents','queue_alerts']
for s in samples:
    if not s.strip(): continue
    head,fr=frames(s); tot+=1
    roots[head.split()[0]]+=1
    for t in targets:
        idx=[i for i,f in enumerate(fr) if t in f]
        if idx:
            i=idx[-1]
            kids[t][(fr[i-1] if i>0 else '(self)')[:110]]+=1
print(tot, roots.most_common(5))
for t in targets:
    c=kids[t]; n=sum(c.values())
    print(f'== {t} {n} ({100*n/tot:.1f}%)')
    for k,v in c.most_common(int(sys.argv[2]) if len(sys.argv)>2 else 4): print(f'  {v:5d} {k}')
