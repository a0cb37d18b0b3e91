"""Inclusive share of samples whose stack holds each pattern. usage: incl.py script.txt pat1 pat2 ..."""
import re,sys,collections
samples=[s for s in open(sys.argv[1]).read().split('\n\n') if s.strip()]
tot=len(samples)
for pat in sys.argv[2:]:
    n=0; kids=collections.Counter()
    for s in samples:
        fr=[re.sub(r'\+0x[0-9a-f]+.*','',' '.join(l.split()[1:])) for l in s.strip().split('\n')[1:]]
        idx=[i for i,f in enumerate(fr) if pat in f]
        if idx:
            n+=1; i=idx[-1]; kids[(fr[i-1] if i>0 else '(self)')[:120]]+=1
    print(f'== {pat}: {n} ({100*n/tot:.1f}%)')
    for k,v in kids.most_common(6): print(f'    {v:5d} {k}')
