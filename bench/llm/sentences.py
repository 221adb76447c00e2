"""Writes the benchmark's 1,000 sentences (seeded, the same every run) to the path given."""
import random
import sys

SUBJECTS = ["A man", "The woman", "A child", "The old farmer", "A young doctor", "The team", "My neighbour",
            "The teacher", "A small dog", "The engineer"]
VERBS = ["is eating", "is reading", "repairs", "paints", "is watching", "carries", "buys", "describes",
         "builds", "forgets"]
OBJECTS = ["a piece of bread", "the newspaper", "an old bicycle", "the kitchen wall", "a football match",
           "a heavy box", "fresh vegetables", "the new movie", "a wooden bridge", "the meeting notes"]
PLACES = ["in the park", "at home", "near the river", "before dinner", "on a rainy Sunday",
          "after work", "in the city centre", "with great care", "without a word", "for the third time"]

rng = random.Random(2026)
with open(sys.argv[1], "w") as out:
    for _ in range(1000):
        out.write(f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)} {rng.choice(PLACES)}.\n")
