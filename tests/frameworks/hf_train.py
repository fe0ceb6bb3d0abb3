"""A tiny Hugging Face Trainer run (2-layer GPT-2 from a config: no download) for tests/test_transformers.py.

python hf_train.py RUN OUT.pt; env: STOP_AT=step (SIGKILL there, after the last checkpoint
is whole), READS=file (each training sample index read is appended there).
"""

import os
import signal
import sys

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainerCallback, TrainingArguments, set_seed

from stockroom.transformers import StockCallback

RUN, OUT = sys.argv[1], sys.argv[2]
STOP_AT = int(os.environ.get("STOP_AT", "-1"))
READS = os.environ.get("READS")


class Tokens(torch.utils.data.Dataset):
    def __init__(self, n: int, record: bool = False) -> None:
        self.record = record
        g = torch.Generator().manual_seed(3)
        self.ids = torch.randint(0, 64, (n, 16), generator=g)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        if READS and self.record:
            with open(READS, "a") as f:
                f.write(f"{i}\n")
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


class Stop(TrainerCallback):
    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == STOP_AT:
            stock.handle.run.wait()
            os.kill(os.getpid(), signal.SIGKILL)


set_seed(0)
model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=64, n_positions=32))
args = TrainingArguments(
    output_dir="hf-out",
    num_train_epochs=3,
    per_device_train_batch_size=4,
    learning_rate=1e-3,
    save_steps=5,
    logging_steps=1,
    eval_strategy="steps",
    eval_steps=5,
    metric_for_best_model="loss",
    report_to=[],
    use_cpu=True,
    dataloader_num_workers=0,
    disable_tqdm=True,
    seed=0,
)
stock = StockCallback(run=RUN, keep_last=1, keep_best=1)
trainer = Trainer(
    model, args, train_dataset=Tokens(32, record=True), eval_dataset=Tokens(8), callbacks=[stock, Stop()]
)
trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
torch.save(model.state_dict(), OUT)
print("resumed from", stock.resumed_step)
