"""Built-in text for synthetic speech: common English words (negatives for `_unknown_`) and
passages for keyword-free background speech.

The passages avoid the 35 Speech Commands words (yes, no, up, down, left, right, on, off,
stop, go, the digits, bed, bird, cat, dog, ...), so they can serve as background for any model
trained on them; `synth.contains_word` checks this for other keyword lists.
"""
from __future__ import annotations

COMMON_WORDS: tuple[str, ...] = tuple("""
about after again air all also always am an and animal answer any apple are area around as ask
at away baby back bad ball bank be bear beautiful because been before begin being best better
between big black blue boat body book both box boy bread bring brother brown build but buy by
call came can car card care carry case catch chair change child city class clean clear close
cold color come could count country cover cross cup cut dark day did different dinner do does
done door draw dream dress drink drive drop dry during each early earth eat egg end enough even
evening ever every eye face fall family far farm fast father feel few field fill find fine
fire first fish floor flower fly food foot for found free friend from front full fun game garden
gave get girl give glass gold gone good got grass great green ground group grow had half hand
hard has have he head hear heart heavy help her here high hill him his hold hole home hope horse
hot hour how hundred idea if in inside into is it its jump just keep kind king knew know lake
land large last late laugh lay lead leaf least leave less let letter light like line lion list
little live long look lost lot love low made make man many map mark may me mean men might mile
milk mind minute miss moment money moon more morning most mother mountain move much music must
my name near need never new next nice night not note nothing now number ocean of often oh old
once only open or order other our out over own page paper park part party pass past pay people
pick picture piece place plan plant play please point poor power press pretty pull push put
question quick quiet rain ran read ready red rest rich ride ring river road rock room round run
said same sat saw say school sea second see seem sell send set shall she ship shoe short should
show side sign simple sing sister sit sleep slow small smile snow so some something son song soon
sound space speak spring stand star start stay step still store story street strong such summer
sun sure swim table take talk tall teach tell ten than thank that the their them then there these
they thing think this those though thought through time today together told tomorrow too took
top town toy train travel true try turn under until upon us use very voice wait walk wall want
warm was wash watch water way we wear weather week well went were what wheel when where which
while white who whole why will wind window winter wish with without woman wonder wood word work
world would write year yellow you young your
""".split())

PASSAGES: tuple[str, ...] = (
    "The morning was cold and clear, and the small boats waited in the harbour while the "
    "fishermen talked about the weather. Somebody said the wind would turn by the evening, "
    "but nobody believed him, because he had said the same thing for a week.",
    "When you bake bread at home, the kitchen fills with a warm smell that makes everybody "
    "hungry. The dough needs time to rise, so it is best to start early and to leave it "
    "somewhere quiet, away from the draught of an open window.",
    "The library in our town has a reading room with tall windows and old wooden tables. "
    "Students come there after school to finish their homework, and the librarian knows "
    "almost every regular visitor by name.",
    "Rivers carry sand and small stones from the mountains to the sea. Over thousands of "
    "years they cut deep valleys, build wide plains and shape the coast where they finally "
    "meet the ocean.",
    "My neighbour keeps bees at the end of her garden. In summer she sells honey at the "
    "market, and she likes to explain how the bees find flowers and tell each other where "
    "the best ones grow.",
    "The train was late again, so the passengers stood together under the roof of the "
    "station and watched the rain. A child asked her mother why the clouds were grey, and "
    "the question started a long conversation about water and light.",
    "A good map shows much more than roads. It tells you where the hills rise, where the "
    "forests grow thick and where a small path might lead you to a quiet lake that few "
    "travellers ever visit.",
    "The orchestra practised for months before the concert. During the final rehearsal the "
    "conductor asked the violins to play softly, and the hall became so quiet that you "
    "could hear the rain against the glass.",
)


def word_salad(n: int, seed: int = 0, words: tuple[str, ...] = COMMON_WORDS,
               length: tuple[int, int] = (5, 14)) -> tuple[str, ...]:
    """`n` sentences of random common words: keyword-free training speech that is not the
    built-in passages (those stay evaluation background). Many short words in varied order
    are the material a keyword spotter must learn to ignore."""
    import random

    rng = random.Random(f"{seed}|salad")
    out = []
    for _ in range(n):
        k = rng.randint(*length)
        out.append(" ".join(rng.choice(words) for _ in range(k)).capitalize() + ".")
    return tuple(out)
