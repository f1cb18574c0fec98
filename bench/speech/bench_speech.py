"""Mail read aloud: time to first audio and CPU, in-process streaming vs the process peer.

Run: .venv/bin/python bench/speech/bench_speech.py [--calls 50] [--repeat 20] [--cpu 0]

Everything runs pinned to ONE core (os.sched_setaffinity, inherited by the
peer's child processes), in the same run, on the same 2 KB mail:

* peer: what a system without an in-process engine does: ``espeak-ng`` then
  ``sox`` run as processes on the whole mail, the 8 kHz file complete before
  playback can start. Time to first audio = the whole pipeline; CPU = the
  children's rusage.
* mailcall: ``Speaker.speak`` (libespeak-ng through cffi, libsoxr, one worker
  thread): time to the first ``.sln`` chunk; CPU = this process's CPU time
  for the whole mail (event loop, text preparation, synthesis, resampling,
  files).
* 50 simultaneous calls on that core: (a) burst — all 50 start a mail at the
  same instant (the worst case); (b) steady — 50 calls each listening in real
  time and moving to the next mail after a random few seconds (keys pressed at
  random), time to first audio of every new mail. The peer is run in the burst
  too, for comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mailcall.speech import Speaker
from mailcall.speech.espeak import EspeakEngine

MAIL = """Bonjour Emma,

Suite à notre réunion de mardi, je vous envoie le compte rendu et les prochaines étapes du projet.
Le client a validé la maquette, avec deux réserves sur la page d'accueil et sur le formulaire de
contact. Pouvez-vous reprendre ces deux points avant vendredi ? Les détails sont sur
https://intranet.example.com/projets/2026/refonte/compte-rendu?id=48213&version=3 et le devis
signé est arrivé ce matin. La livraison de la première version est prévue pour le 15 janvier,
sous réserve que l'hébergeur confirme la migration des serveurs. Bernard s'occupe des tests de
charge la semaine prochaine ; il aura besoin des accès à l'environnement de recette.

Pour toute question, appelez-moi au 06 12 34 56 78 ou écrivez à jean.dupont@example.fr.
Le budget reste dans l'enveloppe prévue, soit 42 500 euros hors taxes, et la facture de
l'acompte, numéro 2026004817, a été réglée. Merci encore pour votre travail sur ce dossier,
le client est très satisfait du résultat et souhaite déjà discuter d'une deuxième phase.

Pour préparer cette deuxième phase, j'aimerais que nous fassions le point jeudi à 14 heures
dans la grande salle. Claire présentera les chiffres de fréquentation du site actuel, et
David nous dira ce que coûterait l'application mobile que le client évoque depuis le début.
Si jeudi ne vous convient pas, proposez-moi un autre créneau avant mercredi soir.
Pensez aussi à mettre à jour le planning partagé : plusieurs tâches apparaissent encore en
retard alors qu'elles sont terminées depuis la semaine dernière, ce qui inquiète inutilement
la direction. Enfin, n'oubliez pas que les congés de fin d'année approchent : merci de
m'indiquer vos dates d'absence pour que je puisse organiser les permanences. Marc et Sophie
ont déjà posé la semaine du 22 décembre, il faudra donc quelqu'un pour répondre au client
pendant cette période, au moins le matin.

Bonne journée,
Jean Dupont
Chef de projet
Tél. : 01 23 45 67 89 - www.example.com - Agence de Lyon, bâtiment B
"""


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(p / 100 * (len(values) - 1))))
    return values[k]


def fmt(values: list[float], unit: str = "ms", scale: float = 1000) -> str:
    return (f"median {statistics.median(values) * scale:8.1f} {unit}  "
            f"p95 {pct(values, 95) * scale:8.1f}  p99 {pct(values, 99) * scale:8.1f}  "
            f"max {max(values) * scale:8.1f}  (n={len(values)})")


# ----------------------------------------------------------------- peer


def peer_once(espeak: str, sox: str, work: Path) -> tuple[float, float, float]:
    """(time to first audio, children CPU, audio seconds) of espeak-ng | sox on the whole mail."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = work / "peer.sln"
    started = time.perf_counter()
    speech = subprocess.run([espeak, "-v", "fr", "-s", "150", "--stdin", "--stdout"],
                            input=MAIL.encode(), capture_output=True, check=True)
    subprocess.run([sox, "-t", "wav", "-", "-r", "8000", "-c", "1", "-b", "16", "-e",
                    "signed-integer", "-t", "raw", str(out)], input=speech.stdout,
                   capture_output=True, check=True)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu, out.stat().st_size / 16000


async def peer_async(espeak: str, sox: str, out: Path) -> float:
    started = time.perf_counter()
    e = await asyncio.create_subprocess_exec(
        espeak, "-v", "fr", "-s", "150", "--stdin", "--stdout",
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    wav, _ = await e.communicate(MAIL.encode())
    s = await asyncio.create_subprocess_exec(
        sox, "-t", "wav", "-", "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer",
        "-t", "raw", str(out), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    await s.communicate(wav)
    return time.perf_counter() - started


# ----------------------------------------------------------------- mailcall


async def ours_once(speaker: Speaker, work: Path) -> tuple[float, float, float, float]:
    """(time to first audio, CPU for the whole mail, audio seconds, wall for the whole mail)."""
    folder = Path(tempfile.mkdtemp(dir=work))
    cpu0 = time.process_time()
    started = time.perf_counter()
    first = None
    audio = 0.0
    async with contextlib.aclosing(speaker.speak(MAIL, None, folder, fallback="fr")) as chunks:
        async for chunk in chunks:
            if first is None:
                first = time.perf_counter() - started
            audio += chunk.seconds
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu0
    shutil.rmtree(folder)
    return first, cpu, audio, wall


async def burst(speaker: Speaker, work: Path, calls: int) -> list[float]:
    async def call() -> float:
        folder = Path(tempfile.mkdtemp(dir=work))
        started = time.perf_counter()
        async with contextlib.aclosing(speaker.speak(MAIL, None, folder, fallback="fr")) as c:
            await anext(c)
            return time.perf_counter() - started

    return list(await asyncio.gather(*(call() for _ in range(calls))))


async def steady(speaker: Speaker, work: Path, calls: int, seconds: float,
                 rng: random.Random) -> tuple[list[float], float]:
    """Calls listening in real time, skipping to the next mail after 1-8 s of it."""
    ttfa: list[float] = []
    end = time.perf_counter() + seconds
    cpu0 = time.process_time()

    async def call() -> None:
        await asyncio.sleep(rng.uniform(0, 2))  # calls did not all start together
        while time.perf_counter() < end:
            folder = Path(tempfile.mkdtemp(dir=work))
            listen = rng.uniform(1, 8)
            started = time.perf_counter()
            heard = 0.0
            async with contextlib.aclosing(speaker.speak(MAIL, None, folder,
                                                         fallback="fr")) as chunks:
                async for chunk in chunks:
                    if heard == 0.0:
                        ttfa.append(time.perf_counter() - started)
                    await asyncio.sleep(chunk.seconds)  # "playing" it
                    heard += chunk.seconds
                    if heard >= listen or time.perf_counter() >= end:
                        break  # a key: next message
            shutil.rmtree(folder)

    await asyncio.gather(*(call() for _ in range(calls)))
    return ttfa, time.process_time() - cpu0


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--steady-seconds", type=float, default=30.0)
    parser.add_argument("--cpu", type=int, default=None, help="core to pin to (default: last)")
    args = parser.parse_args()
    cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    espeak, sox = shutil.which("espeak-ng"), shutil.which("sox")
    if not (espeak and sox):
        sys.exit("the peer needs the espeak-ng and sox programs (apt-get install espeak-ng sox)")
    engine = EspeakEngine()
    if not engine.available:
        sys.exit(engine.problem)
    speaker = Speaker(engine)
    rng = random.Random(12)
    work = Path(tempfile.mkdtemp(prefix="bench-speech-"))
    try:
        print(f"mail: {len(MAIL.encode())} bytes of French text (UTF-8); pinned to CPU {cpu}; "
              f"libespeak-ng {engine._lib.version}, {engine.sample_rate} Hz -> 8000 Hz")
        await ours_once(speaker, work)  # load the voice once, as a running server has
        peer_once(espeak, sox, work)
        peer = [peer_once(espeak, sox, work) for _ in range(args.repeat)]
        ours = [await ours_once(speaker, work) for _ in range(args.repeat)]
        p_ttfa, p_cpu = [p[0] for p in peer], [p[1] for p in peer]
        o_ttfa, o_cpu = [o[0] for o in ours], [o[1] for o in ours]
        audio = statistics.median(o[2] for o in ours)
        print(f"\n1 call, {args.repeat} runs each, {audio:.1f} s of speech per mail")
        print(f"  time to first audio  peer     {fmt(p_ttfa)}")
        print(f"  time to first audio  mailcall {fmt(o_ttfa)}")
        print(f"  -> {statistics.median(p_ttfa) / statistics.median(o_ttfa):.0f}x shorter "
              "(median), must be >= 5x")
        print(f"  speech CPU per mail  peer     {fmt(p_cpu)}")
        print(f"  speech CPU per mail  mailcall {fmt(o_cpu)}")
        print(f"  real-time factor (audio s / CPU s): peer "
              f"{statistics.median(p[2] for p in peer) / statistics.median(p_cpu):.0f}x, "
              f"mailcall {audio / statistics.median(o_cpu):.0f}x; whole mail wall time "
              f"mailcall {statistics.median(o[3] for o in ours) * 1000:.0f} ms")

        b = await burst(speaker, work, args.calls)
        print(f"\n{args.calls} calls starting a mail at the same instant, one core")
        print(f"  time to first audio  mailcall {fmt(b)}")
        outs = [work / f"p{i}.sln" for i in range(args.calls)]
        pb = list(await asyncio.gather(*(peer_async(espeak, sox, o) for o in outs)))
        print(f"  time to first audio  peer     {fmt(pb)}")

        ttfa, cpu_used = await steady(speaker, work, args.calls, args.steady_seconds, rng)
        print(f"\n{args.calls} calls listening in real time for {args.steady_seconds:.0f} s, "
              "next mail after 1-8 s (random keys), one core")
        print(f"  time to first audio  mailcall {fmt(ttfa)}")
        print(f"  CPU used: {cpu_used / args.steady_seconds * 100:.1f}% of the core")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
