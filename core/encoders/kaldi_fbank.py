"""Kaldi-compatible log-mel filterbank, as `torchaudio.compliance.kaldi.fbank` computes it with its defaults.

BEATs was trained on exactly these features; torchaudio is not a dependency here (its wheels pull a CUDA torch),
so the recipe is written out: 25 ms Povey-windowed frames every 10 ms (edges snipped), DC offset removed,
pre-emphasis 0.97, zero-padded to a power-of-two FFT, power spectrum, triangular filters equally spaced on Kaldi's
mel scale between 20 Hz and Nyquist, natural log floored at float32 epsilon. No dither.
"""
from __future__ import annotations

import math

import torch
from torch.nn import functional as F

PREEMPHASIS = 0.97
LOW_FREQUENCY_HZ = 20.0
POVEY_EXPONENT = 0.85


def kaldi_mel(frequency_hz: torch.Tensor) -> torch.Tensor:
    return 1127.0 * torch.log1p(frequency_hz / 700.0)


def mel_filterbank(num_bins: int, fft_size: int, sample_rate: int) -> torch.Tensor:
    """(num_bins, fft_size // 2 + 1) triangular weights; the Nyquist column is zero, as in Kaldi."""
    nyquist = sample_rate / 2
    mel_low, mel_high = kaldi_mel(torch.tensor(LOW_FREQUENCY_HZ)), kaldi_mel(torch.tensor(nyquist))
    step = (mel_high - mel_low) / (num_bins + 1)
    index = torch.arange(num_bins, dtype=torch.float32)[:, None]
    left, centre, right = mel_low + index * step, mel_low + (index + 1) * step, mel_low + (index + 2) * step
    bin_mel = kaldi_mel(torch.arange(fft_size // 2, dtype=torch.float32) * (sample_rate / fft_size))[None, :]
    rising = (bin_mel - left) / (centre - left)
    falling = (right - bin_mel) / (right - centre)
    weights = torch.clamp(torch.minimum(rising, falling), min=0.0)
    return F.pad(weights, (0, 1))


def kaldi_fbank(waveform: torch.Tensor, sample_rate: int = 16000, num_mel_bins: int = 128,
                frame_length_ms: float = 25.0, frame_shift_ms: float = 10.0) -> torch.Tensor:
    """A mono waveform (samples,) in the scale the caller wants (BEATs uses 16-bit integer scale) -> (frames, bins)."""
    waveform = waveform.to(torch.float32).flatten()
    window_size = int(sample_rate * frame_length_ms / 1000)
    shift = int(sample_rate * frame_shift_ms / 1000)
    if waveform.numel() < window_size:
        raise ValueError(f"audio of {waveform.numel()} samples is shorter than one {frame_length_ms:g} ms frame")
    frames = waveform.unfold(0, window_size, shift)
    frames = frames - frames.mean(dim=1, keepdim=True)
    previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
    frames = frames - PREEMPHASIS * previous
    window = torch.hann_window(window_size, periodic=False, dtype=torch.float32).pow(POVEY_EXPONENT)
    fft_size = 1 << math.ceil(math.log2(window_size))
    frames = F.pad(frames * window, (0, fft_size - window_size))
    power = torch.fft.rfft(frames).abs().pow(2)
    energies = power @ mel_filterbank(num_mel_bins, fft_size, sample_rate).T
    return torch.log(torch.clamp(energies, min=torch.finfo(torch.float32).eps))
