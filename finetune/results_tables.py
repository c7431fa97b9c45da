"""The tables of RESULTS-finetune.md from the mnq-gpu eval outputs in RUNS (default /work/ft-runs): eval-before.txt,
eval-NAME.txt (finetune/evaluate.sh ... --check), eval-qat-tf8-step300.txt.     finetune/run.sh results_tables.py [RUNS]"""
import os
import re
import sys
RUNS = sys.argv[1] if len(sys.argv) > 1 else '/work/ft-runs'
def parse(path):
    out, sec = {}, 'all'
    for line in open(path):
        if line.startswith('== the'): sec = '20'
        m = re.match(r'(\S+)\s+(?:gpu|cpu)\s+([\d.]+)%\s+([\d.]+)%\s+([\d.]+)%\s+([\d.]+)%\s+[\d.]+\s+(.*)$', line)
        if m: out.setdefault(sec, {})[m.group(1)] = [float(x) for x in m.groups()[1:5]] + [m.group(6).strip()]
    return out
def others(all_pct, sub_pct, n_all=1200, n_sub=22):
    return (round(all_pct * n_all / 100) - round(sub_pct * n_sub / 100)) / (n_all - n_sub) * 100
before = parse(f'{RUNS}/eval-before.txt')['all']
study = {'dw-linear': '61.50 (float 70.55)', 'dw-linear+relu': '67.80 (float 70.80)', 'dw-linear+relu+l2': '68.03 (float 70.77)'}
print('| model | scheme | before: float | before: int8 | after: float | after: int8 | checked | study TF8 (retrained on ImageNet) |')
print('|---|---|---|---|---|---|---|---|')
for name in ['dw-linear+relu+l2', 'dw-linear+relu', 'dw-linear']:
    path = f'{RUNS}/eval-{name}.txt'
    if not os.path.exists(path) or 'all' not in parse(path): print(f'| `{name}` | (evaluation unfinished) |'); continue
    after = parse(path)['all']
    arch = 'dw-linear' if name == 'dw-linear' else 'dw-linear+relu'
    for scheme in ['tf8', 'tf8-zero-var', 'per-channel']:
        b = before[f'{scheme}+{arch}']; a = after.get(scheme)
        if a is None: continue
        print(f'| `{name}` | `{scheme}` | {b[0]:.2f} / {b[1]:.2f} | {b[2]:.2f} / {b[3]:.2f} | {a[0]:.2f} / {a[1]:.2f} | '
              f'{a[2]:.2f} / {a[3]:.2f} | {a[4]} | {study[name] if scheme == "tf8" else ""} |')
q = parse(f'{RUNS}/eval-qat-tf8-step300.txt')['all']['tflite']
print(f'| `qat-tf8` | its own (`tflite`) | 78.08 / 94.58 (original) | | {q[0]:.2f} / {q[1]:.2f} | {q[2]:.2f} / {q[3]:.2f} | {q[4]} | Google QAT: −0.9 |')
print()
print('| model | scheme | float top-1: 22 images of the 20 classes | float: the other 1,178 | int8 top-1: the 22 | int8: the other 1,178 |')
print('|---|---|---|---|---|---|')
for name in ['dw-linear+relu+l2', 'dw-linear+relu', 'dw-linear', 'qat-tf8']:
    path = f'{RUNS}/eval-{name}.txt'
    if not os.path.exists(path): continue
    r = parse(path)
    if '20' not in r or 'all' not in r: continue
    for scheme, s in r['20'].items():
        a = r['all'][scheme]
        print(f'| `{name}` | `{scheme}` | {s[0]:.2f} | {others(a[0], s[0]):.2f} | {s[2]:.2f} | {others(a[2], s[2]):.2f} |')
