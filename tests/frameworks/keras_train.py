"""A tiny Keras 3 fit for tests/test_keras_cb.py (run as a script, as users do).

python keras_train.py RUN OUT.npz; env: STOP_AT=epoch,batch (SIGKILL there, after
the last checkpoint is whole), VAL_SCORES=a,b,c (an extra metric per epoch to rank by).
"""

import os
import signal
import sys

import keras
import numpy as np

from stockroom.keras import StockCheckpoint

RUN, OUT = sys.argv[1], sys.argv[2]
STOP = [int(v) for v in os.environ.get("STOP_AT", "-1,-1").split(",")]
SCORES = [float(v) for v in os.environ.get("VAL_SCORES", "").split(",") if v]


class Stop(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if [self.epoch, batch] == STOP:
            stock.handle.run.wait()
            os.kill(os.getpid(), signal.SIGKILL)

    def on_epoch_end(self, epoch, logs=None):
        if SCORES:
            logs["score"] = SCORES[epoch]


keras.utils.set_random_seed(0)
rng = np.random.default_rng(1)
x = rng.normal(size=(64, 4)).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = keras.Sequential(
    [keras.Input((4,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)]
)
model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
stock = StockCheckpoint(run=RUN, log_every_n_batches=2, keep_last=1, keep_best=1, monitor="score")
# Stop first: it adds `score` to the epoch logs before the checkpoint reads them
model.fit(
    x, y, batch_size=8, epochs=3, shuffle=False, validation_split=0.25, verbose=0, callbacks=[Stop(), stock]
)
np.savez(OUT, *model.get_weights())
print("resumed from", stock.resumed_epoch)
