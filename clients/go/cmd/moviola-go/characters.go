package main

import (
	"context"
	"fmt"
	"os"

	moviolav1 "github.com/moviola/moviola/clients/go/moviolav1"
)

// createCharacter stores a character of the caller's tenant, a reference image the server takes
// from the video file; GenerateRequest.character_id then names it.
func createCharacter(ctx context.Context, client moviolav1.GenerationServiceClient, name string, videoPath string) int {
	video, err := os.ReadFile(videoPath)
	if err != nil {
		return failed(err)
	}
	response, err := client.CreateCharacter(ctx, &moviolav1.CreateCharacterRequest{Name: name, Video: video})
	if err != nil {
		return failed(err)
	}
	fmt.Println(characterLine(response.GetCharacter()))
	return 0
}

func getCharacter(ctx context.Context, client moviolav1.GenerationServiceClient, characterID string) int {
	response, err := client.GetCharacter(ctx, &moviolav1.GetCharacterRequest{CharacterId: characterID})
	if err != nil {
		return failed(err)
	}
	fmt.Println(characterLine(response.GetCharacter()))
	return 0
}

func deleteCharacter(ctx context.Context, client moviolav1.GenerationServiceClient, characterID string) int {
	response, err := client.DeleteCharacter(ctx, &moviolav1.DeleteCharacterRequest{CharacterId: characterID})
	if err != nil {
		return failed(err)
	}
	fmt.Println("deleted", characterLine(response.GetCharacter()))
	return 0
}

// characterLine is "ID  NAME  WxH", as `moviola characters` prints it.
func characterLine(character *moviolav1.Character) string {
	return fmt.Sprintf("%s  %s  %dx%d", character.GetId(), character.GetName(), character.GetWidth(), character.GetHeight())
}
