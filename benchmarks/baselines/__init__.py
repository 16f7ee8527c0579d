"""What a user would run instead of this project, each as small as it honestly can be."""
