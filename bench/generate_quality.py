"""Generation quality of the default recipe on pokemon-dev's held-out species.

Trains the default `train` recipe on pokemon-dev's train split for a fixed CPU budget (or loads `--model`),
then scores the test split with `evaluate`: the structure fractions (images drawn from test captions whose
rows all have one width, and whose size is the item's), and the reference's Table-1 scores (64-token prompts,
16 greedy tokens: Hamming distance, cosine similarity, BLEU-4). It also draws text->image samples for test
captions and saves them as a grid.

    python bench/generate_quality.py [--data ../shared/data/pokemon-dev] [--minutes 10] [--model DIR] [--num 49]

Writes bench/out/generate_quality.json and bench/out/generate_quality.png.
"""
import argparse, json, os, shutil, sys, tempfile, time
from pathlib import Path
os.environ.setdefault('HF_HUB_OFFLINE', '1')
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
import torch
from pixelbytes.data import build, load_built
from pixelbytes.evaluate import evaluate
from pixelbytes.generate import generate, save_generations
from pixelbytes.models import PixelBytesConfig, PixelBytesModel
from pixelbytes.train import train

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', default=str(ROOT.parent/'shared'/'data'/'pokemon-dev'), help='pokemon-dev image folder')
    p.add_argument('--minutes', type=float, default=10, help='CPU training budget of the default recipe')
    p.add_argument('--model', default=None, help='score this model folder instead of training one')
    p.add_argument('--num', type=int, default=49, help='test captions drawn for the structure score')
    p.add_argument('--samples', type=int, default=12, help='text->image samples in the grid')
    p.add_argument('--threads', type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    out = ROOT/'bench'/'out'; out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix='genq-'))
    try:
        build(a.data, out=work/'data', progress=False)
        data = load_built(work/'data')
        if a.model: model, trained_for = PixelBytesModel.from_pretrained(a.model), None
        else:
            start = time.time()
            model, _ = train({'max_minutes': a.minutes}, work/'data', out=work/'model', progress=False)
            trained_for = round((time.time() - start) / 60, 2)
        ev = evaluate(model, data, metrics=['hamming', 'cosine', 'bleu', 'structure'], num=a.num, seed=0, out=work/'eval', progress=False)
        print(model.summary())
        print(ev)
        captions = data.test['caption'][:a.samples]
        gens = [generate(model, prompt=c, seed=i)[0] for i, c in enumerate(captions)]
        save_generations(gens, out/'generate_quality.png', scale=6, text='below')
        result = {'model': model.summary(), 'config': model.config.to_dict(), 'trained_minutes': trained_for,
                  'test_items': len(data.test), 'evaluation': ev.rows, 'samples_png': str(out/'generate_quality.png')}
        (out/'generate_quality.json').write_text(json.dumps(result, indent=1))
        print(f"wrote {out/'generate_quality.json'} and {out/'generate_quality.png'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)

if __name__ == '__main__': main()
