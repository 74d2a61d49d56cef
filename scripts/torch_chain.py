"""necklace's own PyTorch peer of a chain file: every layer and head kind necklace has, with the
chain file's SGD settings (per stage), learning-rate schedule and augmentation, 2 threads.

usage: torch_chain.py CHAIN.json SECONDS [local|e2e] [--epochs N]
  local  each stage trains its body + its own head on its own loss, the input detached
         (necklace's chain-local algorithm, without the network)
  e2e    every stage's body, then the last stage's head, trained by backprop end to end
         (what the chain would reach if gradients crossed the links); the first stage's
         optimizer settings
  --epochs N  stop after N passes over the training set instead of (or before) SECONDS
Schedules run over the run's length: SECONDS, or N epochs when given (whichever is known;
with both, the fraction of the run done is the larger of the two).

Reads conv {filters, kernel, stride, pad}, relu, maxpool and avgpool {size, stride, grid},
gap, flatten, batchnorm, heads as "linear" or a list of layers ending in linear, and
{"pooled": {"grid": G}}; data.augment {crop, flip}, data.normalize ("[0,1]" or "auto") and
the sgd keys lr, momentum, weight_decay, schedule, warmup, final, gamma, every.
Prints one line per stage with its test accuracy, the last stage's last.
Shares ../shared/peers/fmnist.py for the data (PEERS: its folder).
"""
import json, math, os, sys, time
import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get('PEERS', os.path.join(here, '..', '..', 'shared', 'peers')))
import fmnist  # noqa: E402

torch.set_num_threads(2)
torch.manual_seed(0)
nn = torch.nn

args = [a for a in sys.argv[1:]]
EPOCHS = None
if '--epochs' in args:
    k = args.index('--epochs')
    EPOCHS = float(args[k + 1])
    del args[k:k + 2]
if not args or args[0] in ('-h', '--help'):
    print(__doc__)
    sys.exit(0 if args else 2)
chain = json.load(open(args[0]))
SECONDS = float(args[1]) if len(args) > 1 else 60
MODE = args[2] if len(args) > 2 else 'local'
if MODE not in ('local', 'e2e'):
    sys.exit(f"torch_chain.py: mode {MODE!r}: expected local or e2e")


def kind_opts(l):
    return (l, {}) if isinstance(l, str) else next(iter(l.items()))


def layers(spec, shape):
    """nn modules for a list of layer specs on input shape (c, h, w); returns (modules, shape)."""
    mods = []
    c, h, w = shape
    for l in spec:
        kind, o = kind_opts(l)
        if kind == 'conv':
            k, s, p = o['kernel'], o.get('stride', 1), o.get('pad', 0)
            mods.append(nn.Conv2d(c, o['filters'], k, stride=s, padding=p))
            c, h, w = o['filters'], (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        elif kind == 'relu':
            mods.append(nn.ReLU())
        elif kind in ('maxpool', 'avgpool') and 'grid' in o:
            g = o['grid']
            mods.append(nn.AdaptiveAvgPool2d(g) if kind == 'avgpool' else nn.AdaptiveMaxPool2d(g))
            h = w = g
        elif kind in ('maxpool', 'avgpool'):
            size = o.get('size', 2)
            s = o.get('stride', size)
            mods.append((nn.MaxPool2d if kind == 'maxpool' else nn.AvgPool2d)(size, s))
            h, w = (h - size) // s + 1, (w - size) // s + 1
        elif kind == 'gap':
            mods.append(nn.AdaptiveAvgPool2d(1))
            h = w = 1
        elif kind == 'flatten':
            c, h, w = c * h * w, 1, 1
        elif kind == 'batchnorm':
            mods.append(nn.BatchNorm2d(c, eps=o.get('eps', 1e-5), momentum=o.get('momentum', 0.1)))
        elif kind == 'linear':
            mods += [nn.Flatten(), nn.Linear(c * h * w, o.get('units', 10))]
            c, h, w = o.get('units', 10), 1, 1
        else:
            sys.exit(f"torch_chain.py: layer kind {kind!r} not handled")
    return mods, (c, h, w)


def head(spec, shape):
    if spec == 'linear':
        spec = ['linear']
    elif isinstance(spec, dict) and 'pooled' in spec:
        spec = [{'avgpool': {'grid': spec['pooled'].get('grid', 2)}}, 'linear']
    mods, _ = layers(spec, shape)
    return nn.Sequential(*mods)


def schedule(o, p):
    """The learning rate at fraction p of the run (as optim/sgd.c computes it)."""
    lr, warm = o.get('lr', 0.01), o.get('warmup', 0.0)
    if warm > 0 and p < warm:
        return lr * (p + 1e-3) / (warm + 1e-3)
    kind = o.get('schedule', 'constant')
    q = (p - warm) / (1 - warm) if warm < 1 else 1.0
    q = min(max(q, 0.0), 1.0)
    if kind == 'cosine':
        f = o.get('final', 0.0)
        return lr * (f + (1 - f) * 0.5 * (1 + math.cos(math.pi * q)))
    if kind == 'step':
        return lr * o.get('gamma', 0.1) ** math.floor(q / o.get('every', 0.5) + 1e-9)
    return lr


data = chain['data']
xtr, ytr, xte, yte = fmnist.load()
if data.get('normalize') == 'auto':
    m, s = xtr.mean().item(), xtr.std().item()
    xtr, xte, pad_value = (xtr - m) / s, (xte - m) / s, -m / s
else:
    pad_value = 0.0
aug = data.get('augment', {})
CROP, FLIP = aug.get('crop', 0), aug.get('flip', False)
B = data.get('batch', 64)

bodies, heads, shape = [], [], (1, 28, 28)
for st in chain['stages']:
    mods, shape = layers(st.get('layers', []), shape)
    bodies.append(nn.Sequential(*mods))
    heads.append(head(st.get('head', 'linear'), shape))
sgd = [st['optimizer'].get('sgd') for st in chain['stages']]
# "boost": a stage's head adds its logits to those of the stage before it (which travel with the
# activations); chain-wide at the top level, or per stage.
BOOST = [k > 0 and st.get('boost', chain.get('boost', False)) for k, st in enumerate(chain['stages'])]
if any(o is None for o in sgd):
    sys.exit("torch_chain.py: every stage must use sgd")


def make_opt(params, o):
    return torch.optim.SGD(params, lr=o.get('lr', 0.01), momentum=o.get('momentum', 0),
                           weight_decay=o.get('weight_decay', 0))


if MODE == 'e2e':
    model = nn.Sequential(*bodies, heads[-1])
    opts = [make_opt(model.parameters(), sgd[0])]
    cfgs = [sgd[0]]
else:
    opts = [make_opt(list(b.parameters()) + list(h.parameters()), o) for b, h, o in zip(bodies, heads, sgd)]
    cfgs = sgd
lossf = nn.CrossEntropyLoss()


def augment(xb):
    if CROP:
        n = xb.shape[0]
        p = CROP
        padded = torch.nn.functional.pad(xb, (p, p, p, p), value=pad_value)
        dy = torch.randint(0, 2 * p + 1, (n,))
        dx = torch.randint(0, 2 * p + 1, (n,))
        xb = torch.stack([padded[i, :, dy[i]:dy[i] + 28, dx[i]:dx[i] + 28] for i in range(n)])
    if FLIP:
        f = torch.rand(xb.shape[0]) < 0.5
        xb = torch.where(f[:, None, None, None], xb.flip(3), xb)
    return xb


N = len(ytr)
n, t0 = 0, time.time()
perm = torch.randperm(N)
for mod in bodies + heads:
    mod.train()
while True:
    el = time.time() - t0
    p = el / SECONDS if SECONDS > 0 else 0.0
    if EPOCHS:
        p = max(p if SECONDS > 0 and el < SECONDS else 0.0, n / (EPOCHS * N))
        if n >= EPOCHS * N:
            break
    if el >= SECONDS > 0:
        break
    i = n % N
    if i + B > N:
        perm = torch.randperm(N)
        n += N - i
        continue
    idx = perm[i:i + B]
    xb, yb = augment(xtr[idx]), ytr[idx]
    n += B
    for o, cfg in zip(opts, cfgs):
        for g in o.param_groups:
            g['lr'] = schedule(cfg, min(p, 1.0))
    if MODE == 'e2e':
        opts[0].zero_grad()
        lossf(model(xb), yb).backward()
        opts[0].step()
    else:
        up = None
        for k, (b, h, o) in enumerate(zip(bodies, heads, opts)):
            xb = xb.detach()
            o.zero_grad()
            y = b(xb)
            z = h(y) + (up if BOOST[k] else 0)
            lossf(z, yb).backward()
            o.step()
            # what goes downstream: the body output and the logits with the updated parameters,
            # in eval mode
            with torch.no_grad():
                b.eval()
                h.eval()
                xb = b(xb)
                up = h(xb) + (up if BOOST[k] else 0)
                b.train()
                h.train()
dt = time.time() - t0
for mod in bodies + heads:
    mod.eval()
with torch.no_grad():
    x, up = xte, 0
    for k, (b, h) in enumerate(zip(bodies, heads)):
        x = b(x)
        z = h(x) + (up if BOOST[k] and MODE == 'local' else 0)
        up = z
        if MODE == 'local' or k == len(bodies) - 1:
            acc = (z.argmax(1) == yte).float().mean().item()
            print(f"peer torch chain={chain['chain']} mode={MODE} stage={chain['stages'][k]['name']} "
                  f"test_acc={acc:.4f} samples_s={n / dt:.0f} epochs={n / N:.1f} seconds={dt:.0f}",
                  flush=True)
