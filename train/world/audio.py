"""Tiny-world sounds: 1 to 4 events of one kind, low or high, slow or fast, as 16 kHz mono WAV.

Kinds are synthesised with numpy (beep, chirp, siren, hiss, drum, bell, chord); spoken words come from the
`espeak-ng` binary when it is installed. Without it the speech kind is left out, and each record says so in
`skipped_kinds`, because the same seed then draws a different world.
"""
from __future__ import annotations

import functools
import io
import shutil
import subprocess

import numpy as np
import soundfile
from scipy.signal import resample_poly

from train.world.vocabulary import MAX_EVENTS, PITCHES, SOUND_KINDS, SOUND_SETTINGS, SPOKEN_WORDS, TEMPOS

EXTENSION = "wav"
SAMPLE_RATE = 16000
MIN_DURATION_S = 2.0

FREQUENCY_HZ = {
    "beep": {"low": (220, 420), "high": (1100, 2000)},
    "chirp": {"low": (180, 260), "high": (1000, 1300)},
    "siren": {"low": (330, 480), "high": (1000, 1400)},
    "hiss": {"low": (300, 500), "high": (3500, 5000)},
    "drum": {"low": (55, 90), "high": (180, 280)},
    "bell": {"low": (260, 420), "high": (900, 1400)},
    "chord": {"low": (130, 220), "high": (520, 800)},
}
"""Fundamental (chirp: start of the sweep; hiss: centre of the noise band) per kind and pitch."""
PITCH_SPLIT_HZ = {"beep": 700, "chirp": 700, "siren": 700, "hiss": 1800, "drum": 130, "bell": 650, "chord": 380,
                  "speech": 150}
"""Where low ends and high begins for each kind's dominant frequency (speech: the voice's fundamental)."""
VOICES = {"low": ("en-us", 10), "high": ("en-us+f3", 80)}
"""espeak-ng voice and pitch (0-99) per pitch word: about 70 Hz and 250 Hz fundamentals."""
EVENT_SECONDS = {"beep": (0.15, 0.3), "chirp": (0.25, 0.4), "siren": (0.5, 0.8), "hiss": (0.2, 0.35),
                 "drum": (0.3, 0.3), "bell": (0.8, 0.8), "chord": (0.35, 0.6)}
ONSET_INTERVAL_S = {"slow": (0.8, 1.0), "fast": (0.3, 0.42)}
"""Time from one event's start to the next; an event never lasts more than 3/4 of it."""
SPEECH_GAP_S = {"slow": (0.45, 0.65), "fast": (0.05, 0.12)}
"""Silence between spoken words, whose length is the word's own."""


@functools.lru_cache(maxsize=1)
def speech_available() -> bool:
    return shutil.which("espeak-ng") is not None


@functools.lru_cache(maxsize=64)
def spoken_word(word: str, pitch: str) -> np.ndarray:
    """The word spoken by espeak-ng at 16 kHz, silence trimmed; read-only and cached per process."""
    voice, level = VOICES[pitch]
    result = subprocess.run(["espeak-ng", "-v", voice, "-p", str(level), "-s", "165", "--stdout", word],
                            capture_output=True, check=True)
    samples, rate = soundfile.read(io.BytesIO(result.stdout), dtype="float32")
    samples = resample_poly(samples, SAMPLE_RATE, rate).astype(np.float32)
    loud = np.flatnonzero(np.abs(samples) > 0.02 * np.abs(samples).max())
    samples = samples[loud[0]:loud[-1] + 1] / np.abs(samples).max()
    samples.setflags(write=False)
    return samples


def available_kinds() -> tuple[str, ...]:
    return SOUND_KINDS if speech_available() else tuple(k for k in SOUND_KINDS if k != "speech")


def sample_scene(rng: np.random.Generator) -> dict:
    """The properties record of a new sound clip."""
    kinds = available_kinds()
    kind = kinds[int(rng.integers(len(kinds)))]
    pitch = PITCHES[int(rng.integers(2))]
    events = int(rng.integers(1, MAX_EVENTS + 1))
    tempo = TEMPOS[int(rng.integers(2))] if events > 1 else None
    word = sweep = frequency = None
    if kind == "speech":
        word = SPOKEN_WORDS[int(rng.integers(len(SPOKEN_WORDS)))]
        event_seconds = len(spoken_word(word, pitch)) / SAMPLE_RATE
        interval = (event_seconds + float(rng.uniform(*SPEECH_GAP_S[tempo]))) if tempo else 0.0
    else:
        frequency = round(float(rng.uniform(*FREQUENCY_HZ[kind][pitch])), 1)
        interval = float(rng.uniform(*ONSET_INTERVAL_S[tempo])) if tempo else 0.0
        event_seconds = float(rng.uniform(*EVENT_SECONDS[kind]))
        if tempo:
            event_seconds = min(event_seconds, 0.75 * interval)
        if kind == "chirp":
            sweep = ("rising", "falling")[int(rng.integers(2))]
    first = float(rng.uniform(0.1, 0.4))
    onsets = [round(first + i * interval * float(rng.uniform(0.97, 1.03)), 3) for i in range(events)]
    end = onsets[-1] + event_seconds + float(rng.uniform(0.2, 0.4))
    return {"sample_rate": SAMPLE_RATE, "duration": round(max(end, MIN_DURATION_S), 3), "kind": kind,
            "pitch": pitch, "events": events, "tempo": tempo, "onsets": onsets,
            "event_duration": round(event_seconds, 3), "frequency": frequency, "sweep": sweep, "word": word,
            "voice": VOICES[pitch][0] if kind == "speech" else None, "setting": SOUND_SETTINGS.get(kind),
            "gain": round(float(rng.uniform(0.3, 0.9)), 3),
            "noise_level": round(float(rng.uniform(0.001, 0.006)), 4),
            "skipped_kinds": [k for k in SOUND_KINDS if k not in kinds]}


def _envelope(n: int, attack_s: float, release_s: float) -> np.ndarray:
    envelope = np.ones(n, dtype=np.float32)
    attack, release = min(n, int(attack_s * SAMPLE_RATE)), min(n, int(release_s * SAMPLE_RATE))
    envelope[:attack] = np.linspace(0, 1, attack, endpoint=False)
    envelope[n - release:] *= np.linspace(1, 0, release)
    return envelope


def _tone(frequency: np.ndarray | float, n: int) -> np.ndarray:
    """A sine whose frequency may change per sample."""
    per_sample = np.broadcast_to(np.asarray(frequency, dtype=np.float64), (n,))
    return np.sin(2 * np.pi * np.cumsum(per_sample) / SAMPLE_RATE).astype(np.float32)


def _event(properties: dict, rng: np.random.Generator) -> np.ndarray:
    """One event of the record's kind, peak 1."""
    kind, f = properties["kind"], properties["frequency"]
    if kind == "speech":
        return np.array(spoken_word(properties["word"], properties["pitch"]))
    n = int(properties["event_duration"] * SAMPLE_RATE)
    t = np.arange(n, dtype=np.float32) / SAMPLE_RATE
    if kind == "beep":
        wave = _tone(f, n) * _envelope(n, 0.005, 0.02)
    elif kind == "chirp":
        sweep = np.geomspace(f, 2 * f, n) if properties["sweep"] == "rising" else np.geomspace(2 * f, f, n)
        wave = _tone(sweep, n) * _envelope(n, 0.005, 0.03)
    elif kind == "siren":
        wave = _tone(f * (1 + 0.18 * np.sin(2 * np.pi * 3.0 * t)), n) * _envelope(n, 0.03, 0.05)
    elif kind == "hiss":
        spectrum = np.fft.rfft(rng.standard_normal(n))
        bins = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
        spectrum[(bins < f * 0.6) | (bins > f * 1.4)] = 0
        wave = np.fft.irfft(spectrum, n).astype(np.float32) * _envelope(n, 0.01, 0.05)
    elif kind == "drum":
        wave = _tone(f * (1 + 0.6 * np.exp(-t / 0.02)), n) * np.exp(-t / 0.09) * _envelope(n, 0.002, 0.01)
    elif kind == "bell":
        partials = ((1.0, 1.0, 0.5), (2.0, 0.45, 0.3), (2.76, 0.3, 0.2), (5.4, 0.15, 0.1))
        wave = sum(a * _tone(f * k, n) * np.exp(-t / tau) for k, a, tau in partials) * _envelope(n, 0.002, 0.02)
    elif kind == "chord":
        wave = sum(a * _tone(f * root * h, n) for root in (1.0, 1.26, 1.5) for h, a in ((1, 1.0), (2, 0.35), (3, 0.15)))
        wave = wave * _envelope(n, 0.01, 0.06)
    else:
        raise ValueError(f"unknown sound kind {kind!r}; expected one of {SOUND_KINDS}")
    return (wave / max(float(np.abs(wave).max()), 1e-9)).astype(np.float32)


def synthesize(properties: dict, rng: np.random.Generator) -> np.ndarray:
    """The clip as float32 samples in [-1, 1]."""
    clip = np.zeros(int(round(properties["duration"] * SAMPLE_RATE)), dtype=np.float32)
    for onset in properties["onsets"]:
        event = _event(properties, rng)
        start = int(onset * SAMPLE_RATE)
        length = min(len(event), len(clip) - start)
        clip[start:start + length] += event[:length]
    clip *= properties["gain"]
    clip += rng.standard_normal(len(clip)).astype(np.float32) * properties["noise_level"]
    return np.clip(clip, -1.0, 1.0)


def write(properties: dict, rng: np.random.Generator, path: str) -> None:
    soundfile.write(path, synthesize(properties, rng), SAMPLE_RATE, subtype="PCM_16", format="WAV")
