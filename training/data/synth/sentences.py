"""English sentences for the synthetic benchmark, generated from a small grammar.

A fixed list would cap the benchmark's size and make held-out sentences scarce; the grammar gives as many
distinct, speakable sentences as asked for, reproducibly from a seed. Its words were chosen to cover the
mouth shapes that matter for lip sync: bilabial closures (p, b, m), lip rounding (w, oo, o), spread vowels
(ee), open vowels (a, ah) and labiodentals (f, v).
"""
import numpy as np

_NAMES = ["Mabel", "Bob", "Peter", "Maria", "Walter", "Fiona", "Oliver", "Ruby", "Victor", "Emma", "Hugo",
          "Paula", "Martin", "Olga", "Vincent", "Bella", "Tom", "Wanda", "Abel", "Lucy"]
_ADJECTIVES = ["blue", "big", "warm", "old", "happy", "wooden", "purple", "broken", "cheap", "smooth",
               "bright", "quiet", "heavy", "famous", "small", "yellow", "open", "moving", "pale", "brave"]
_NOUNS = ["boat", "moon", "apple", "window", "map", "puppet", "bottle", "pilot", "bamboo", "mouse",
          "wagon", "piano", "rope", "feather", "balloon", "mirror", "garden", "pebble", "violin", "robot",
          "shovel", "tomato", "whistle", "bridge", "office", "camera", "pillow", "market", "forest", "oven"]
_VERBS = ["move", "paint", "bring", "open", "follow", "bounce", "wash", "fix", "borrow", "push", "weigh",
          "lift", "hide", "pump", "mop", "watch", "fold", "measure", "polish", "carry"]
_PAST_VERBS = ["moved", "painted", "brought", "opened", "followed", "bounced", "washed", "fixed",
               "borrowed", "pushed", "lifted", "hid", "pumped", "watched", "folded", "measured", "carried"]
_PREPOSITIONS = ["over", "behind", "beneath", "above", "beside", "through", "around", "towards", "past"]
_ADVERBS = ["slowly", "quietly", "twice", "very well", "at noon", "before dawn", "by the window",
            "every morning", "on Monday", "with both hands", "for a moment", "again and again"]
_IRREGULAR_PLURALS = {"mouse": "mice", "tomato": "tomatoes"}
_NUMBERS = ["two", "four", "five", "seven", "nine", "twelve", "fifty", "a hundred"]

_TEMPLATES = [
    "The {adj} {noun} {past} {prep} the {adj2} {noun2}.",
    "{name} will {verb} the {adj} {noun} {adv}.",
    "Please {verb} {number} {adj} {nouns} {prep} the {noun2}.",
    "Why did {name} {verb} the {noun} {adv}?",
    "We {verb} the {noun} {adv}, and {name} {past} the {noun2}.",
    "Maybe the {noun} was {adj}, but the {noun2} was {adj2}.",
    "{name} and {name2} {past} a {adj} {noun} {prep} the {noun2}.",
    "Would you {verb} my {adj} {noun} {adv}, {name}?",
    "Our {noun} is {adj}, so we {verb} it {adv}.",
    "Before the {noun} moved, {name} {past} {number} {nouns2}.",
]


def _plural(noun):
    return _IRREGULAR_PLURALS.get(noun, noun + "s")


def _sentence(rng):
    def pick(words):
        return words[int(rng.integers(len(words)))]

    def pick_two(words):
        first, second = rng.choice(len(words), size=2, replace=False)
        return words[int(first)], words[int(second)]

    template = pick(_TEMPLATES)
    name, name2 = pick_two(_NAMES)
    adj, adj2 = pick_two(_ADJECTIVES)
    noun, noun2 = pick_two(_NOUNS)
    text = template.format(name=name, name2=name2, adj=adj, adj2=adj2, noun=noun, noun2=noun2,
                           nouns=_plural(noun), nouns2=_plural(noun2),
                           verb=pick(_VERBS), past=pick(_PAST_VERBS), prep=pick(_PREPOSITIONS),
                           adv=pick(_ADVERBS), number=pick(_NUMBERS))
    return text[0].upper() + text[1:]


def make_sentences(count, seed):
    """``count`` distinct sentences, the same for the same seed (and a prefix of any larger count)."""
    rng = np.random.default_rng([seed, 0x5E47])
    sentences, seen = [], set()
    while len(sentences) < count:
        text = _sentence(rng)
        if text not in seen:
            seen.add(text)
            sentences.append(text)
    return sentences
