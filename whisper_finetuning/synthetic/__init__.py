"""Support: speech synthesis with eSpeak NG (tts) and a synthetic corpus in the Common Voice and FLEURS layouts
(corpus), spoken from the sentence lists in sentences/."""
