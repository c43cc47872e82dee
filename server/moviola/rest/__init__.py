"""The REST face: ``/v1/videos`` as the ``openai`` SDK's ``client.videos`` calls it, plus Moviola's extensions."""
